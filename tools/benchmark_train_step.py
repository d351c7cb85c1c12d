#!/usr/bin/env python
"""Measure peak memory and time of training steps for configs (one process per config)."""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from sar_lora_dino.utils.io import atomic_write  # noqa: E402

DEFAULT_CONFIGS = [
    "configs/sar_lora_dino/retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k.py",
    "configs/sar_lora_dino/retinanet_dinov3_convnexts_full_ft_sardet100k.py",
]


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(config, size, batch, steps, device):
    """
    Run ``steps`` optimizer steps of ``config``'s model on random images with one box each.

    Args:
        config (str): LazyConfig file.
        size (int): square image side in pixels.
        batch (int): images per step.
        steps (int): steps to time (after one warm-up step).
        device (str): "cpu" or "cuda".

    Returns:
        dict: trainable parameters, peak RSS of the process and its growth over the built
        model (MiB), peak CUDA memory (MiB, on CUDA), seconds per step.
    """
    import torch
    from detectron2.config import LazyConfig, instantiate
    from detectron2.structures import Boxes, Instances
    from detectron2.utils.events import EventStorage

    torch.manual_seed(0)
    cfg = LazyConfig.load(os.path.join(REPO, config))
    model = instantiate(cfg.model).to(device).train()
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)

    def sample():
        inst = Instances((size, size))
        inst.gt_boxes = Boxes(torch.tensor([[size * 0.1, size * 0.2, size * 0.4, size * 0.6]]))
        inst.gt_classes = torch.tensor([1])
        return {"image": torch.rand(3, size, size) * 255, "instances": inst}

    data = [sample() for _ in range(batch)]
    rss_before = _peak_rss_mib()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    with EventStorage():
        for i in range(steps + 1):
            start = time.perf_counter()
            loss = sum(model(data).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if device == "cuda":
                torch.cuda.synchronize()
            if i > 0:  # the first step warms up allocators and kernels
                times.append(time.perf_counter() - start)
    result = {
        "config": os.path.basename(config),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "image_size": size,
        "batch": batch,
        "device": device,
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "peak_rss_growth_mib": round(_peak_rss_mib() - rss_before, 1),
        "seconds_per_step": round(sum(times) / len(times), 3),
    }
    if device == "cuda":
        result["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def main(argv=None):
    """
    Args:
        argv (list[str] or None): command line; see ``--help``.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("configs", nargs="*", default=DEFAULT_CONFIGS)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.single:  # child process: one config, result as one JSON line
        result = measure(args.configs[0], args.size, args.batch, args.steps, args.device)
        print("RESULT " + json.dumps(result))
        return
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    results = []
    for config in args.configs:
        cmd = [sys.executable, os.path.abspath(__file__), config, "--single"]
        cmd += ["--size", str(args.size), "--batch", str(args.batch)]
        cmd += ["--steps", str(args.steps), "--device", args.device]
        print(f"measuring {config} ...", flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            sys.exit(f"benchmark of {config} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(lines[-1][len("RESULT ") :]))
    keys = ["config", "trainable_params", "peak_rss_mib", "peak_rss_growth_mib", "seconds_per_step"]
    if args.device == "cuda":
        keys.append("peak_cuda_mib")
    print(f"\n{args.size}x{args.size}, batch {args.batch}, {args.steps} steps on {args.device}")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in results:
        cells = [f"{r[k]:,}" if isinstance(r[k], int) else str(r[k]) for k in keys]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        atomic_write(args.json, lambda f: json.dump(results, f, indent=2), mode="w")


if __name__ == "__main__":
    main()
