"""Measurements behind tools/benchmark.py; each runs in a fresh process (see its --child flag)."""

import contextlib
import io
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

CFG = "configs/sar_lora_dino/retinanet_dinov3_convnexts_{}_sardet100k.py"
# name -> (config, overrides); overrides are LazyConfig "key=value" strings
VARIANTS = {
    "linear": (CFG.format("linear"), []),
    "lora": (CFG.format("lora_r16_fc1fc2"), []),
    "lora_stage3": (CFG.format("lora_r16_fc2_ft_stage3"), []),
    "full": (CFG.format("full_ft"), []),
    "lora_lean": (CFG.format("lora_r16_fc1fc2"), ["model.backbone.bottom_up.lean_lora_mlp=True"]),
    "lora_ckpt": (CFG.format("lora_r16_fc1fc2"), ["model.backbone.bottom_up.use_checkpoint=True"]),
    "lora_lean_ckpt": (
        CFG.format("lora_r16_fc1fc2"),
        [
            "model.backbone.bottom_up.lean_lora_mlp=True",
            "model.backbone.bottom_up.checkpoint_stages=[2]",
        ],
    ),
    "full_ckpt": (CFG.format("full_ft"), ["model.backbone.bottom_up.use_checkpoint=True"]),
}


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def build_model(variant, device, channels_last=False):
    """Instantiate a variant's model (random weights) and its optimizer."""
    import torch
    from detectron2.config import LazyConfig, instantiate

    config, overrides = VARIANTS[variant]
    cfg = LazyConfig.load(os.path.join(REPO, config))
    cfg = LazyConfig.apply_overrides(cfg, overrides)
    torch.manual_seed(0)
    model = instantiate(cfg.model).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    cfg.optimizer.params.model = model
    return cfg, model, instantiate(cfg.optimizer)


def _batch(size, batch):
    import torch
    from detectron2.structures import Boxes, Instances

    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(batch):
        inst = Instances((size, size))
        inst.gt_boxes = Boxes(torch.tensor([[0.1, 0.2, 0.4, 0.6], [0.5, 0.5, 0.9, 0.7]]) * size)
        inst.gt_classes = torch.tensor([1, 4])
        out.append({"image": torch.rand(3, size, size, generator=g) * 255, "instances": inst})
    return out


class SavedTensorMeter:
    """Bytes of distinct storages autograd saves for backward (parameters excluded)."""

    def __init__(self, model):
        self.param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.storages = {}

    def pack(self, t):
        s = t.untyped_storage()
        if s.data_ptr() not in self.param_ptrs and s.device.type != "meta":
            self.storages[s.data_ptr()] = s.nbytes()
        return t

    def mib(self):
        return sum(self.storages.values()) / 2**20


def train(variant, size, batch, steps, device, amp="none", channels_last=False, release="before"):
    """
    Time optimizer steps of a variant on random images with two boxes each.

    Args:
        variant (str): key of :data:`VARIANTS`.
        size (int): square image side.
        batch (int): images per step.
        steps (int): timed steps, after one warm-up step.
        device (str): "cpu" or "cuda".
        amp (str): "none", "fp16" or "bf16" autocast (fp16 with a GradScaler).
        channels_last (bool): model and images in channels_last memory format.
        release (str): "before": ``zero_grad(set_to_none=True)`` before the forward, so the last
            step's gradients are freed during it; "after": detectron2's order (forward,
            zero_grad, backward).

    Returns:
        dict: median seconds per step and images/s, peak memory (process RSS on CPU, max
        allocated on CUDA), MiB of activations saved for backward, trainable parameters.
    """
    import torch
    from detectron2.utils.events import EventStorage

    _, model, optimizer = build_model(variant, device, channels_last)
    model.train()
    data = _batch(size, batch)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    if channels_last:
        for d in data:
            d["image"] = d["image"].contiguous(memory_format=torch.channels_last)
    rss_before = peak_rss_mib()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step(meter=None):
        if release == "before":
            optimizer.zero_grad(set_to_none=True)
        hooks = (
            torch.autograd.graph.saved_tensors_hooks(meter.pack, lambda t: t)
            if meter
            else contextlib.nullcontext()
        )
        with hooks, torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = sum(model(data).values())
        if release == "after":
            optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        return float(loss)

    times = []
    with EventStorage():
        for i in range(steps + 1):
            sync()
            start = time.perf_counter()
            step()
            sync()
            if i > 0:  # the first step warms up allocators and kernels
                times.append(time.perf_counter() - start)
        peak = peak_rss_mib()
        cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None
        meter = SavedTensorMeter(model)
        step(meter)
    sec = statistics.median(times)
    return {
        "variant": variant,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "seconds_per_step": round(sec, 3),
        "images_per_s": round(batch / sec, 3),
        "peak_rss_mib": round(peak, 1),
        "peak_rss_growth_mib": round(peak - rss_before, 1),
        "peak_cuda_mib": None if cuda_peak is None else round(cuda_peak, 1),
        "saved_activations_mib": round(meter.mib(), 1),
    }


def infer(size, reps, device, amp="none", channels_last=False):
    """
    Seconds per image (batch 1) of the plain model (no LoRA), the LoRA model unmerged and the
    LoRA model merged, interleaved repetitions, medians.
    """
    import torch

    from sar_lora_dino.modeling.lora import merge_lora, unmerge_lora

    _, plain, _ = build_model("linear", device, channels_last)
    _, lora, _ = build_model("lora", device, channels_last)
    for m in lora.modules():  # a trained adapter is not zero: give B a value
        if hasattr(m, "lora_B"):
            torch.nn.init.normal_(m.lora_B, std=1e-3)
    plain.eval()
    lora.eval()
    image = torch.rand(3, size, size) * 255
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    inputs = [{"image": image, "height": size, "width": size}]
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    modes = {"plain": (plain, None), "lora_unmerged": (lora, unmerge_lora)}
    modes["lora_merged"] = (lora, merge_lora)
    times = {k: [] for k in modes}
    with torch.no_grad(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
        for rep in range(reps + 1):
            for name, (model, prepare) in modes.items():
                if prepare is not None:
                    prepare(model)
                sync()
                start = time.perf_counter()
                model(inputs)
                sync()
                if rep > 0:
                    times[name].append(time.perf_counter() - start)
    out = {k: round(statistics.median(v), 4) for k, v in times.items()}
    out["merged_over_plain"] = round(out["lora_merged"] / out["plain"], 3)
    out["unmerged_over_plain"] = round(out["lora_unmerged"] / out["plain"], 3)
    return out


def loader(workers, batches, batch):
    """Training loader images/s (the config's mapper, 800x800) on synthetic SAR data."""
    from detectron2.config import LazyConfig, instantiate

    from sar_lora_dino.data import make_synthetic_sardet, register_sardet100k

    cfg = LazyConfig.load(os.path.join(REPO, VARIANTS["lora"][0]))
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        root = os.path.join(tmp, "SARDet_100K")
        with contextlib.redirect_stdout(io.StringIO()):
            make_synthetic_sardet(root, num_train=64, num_val=1, num_test=1, seed=0)
        names = register_sardet100k(root, prefix="bench_" + uuid.uuid4().hex[:6])
        for w in workers:
            cfg.dataloader.train.dataset.names = names[0]
            cfg.dataloader.train.total_batch_size = batch
            cfg.dataloader.train.num_workers = w
            it = iter(instantiate(cfg.dataloader.train))
            next(it)  # workers start, first batches
            start = time.perf_counter()
            for _ in range(batches):
                next(it)
            out[str(w)] = round(batches * batch / (time.perf_counter() - start), 2)
            del it
    return out


def _synthetic_val(path, num_images, num_boxes, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    sizes = rng.choice([256, 512, 800], size=num_images)
    counts = rng.multinomial(num_boxes, np.ones(num_images) / num_images)
    images, anns = [], []
    for i, (s, c) in enumerate(zip(sizes.tolist(), counts.tolist())):
        images.append({"id": i, "file_name": f"{i:07d}.png", "height": s, "width": s})
        wh = rng.uniform(4, s / 3, size=(c, 2))
        xy = rng.uniform(0, 1, size=(c, 2)) * (s - wh)
        for (x, y), (w, h) in zip(xy.tolist(), wh.tolist()):
            anns.append(
                {
                    "id": len(anns),
                    "image_id": i,
                    "category_id": int(rng.integers(6)),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "ignore": 0,
                    "segmentation": [],
                }
            )
    cats = ["ship", "aircraft", "car", "tank", "bridge", "harbor"]
    data = {"images": images, "annotations": anns}
    data["categories"] = [{"id": i, "name": n} for i, n in enumerate(cats)]
    with open(path, "w") as f:
        json.dump(data, f)
    return data, cats


def evaluation(num_images, num_boxes, dets_per_image, use_fast_impl):
    """
    Seconds of a val-sized COCO evaluation through ShiftedIdCOCOEvaluator: loading the ground
    truth JSON, ``process()`` of every image's detections, ``evaluate()``; wall clock per
    phase, and the process's CPU seconds for all three (what a shared machine's load does
    not inflate).
    """
    import numpy as np
    import torch
    from detectron2.data.datasets import register_coco_instances
    from detectron2.structures import Boxes, Instances

    from sar_lora_dino.data.evaluator import ShiftedIdCOCOEvaluator

    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        path = os.path.join(tmp, "val.json")
        gt, cats = _synthetic_val(path, num_images, num_boxes)
        name = "bench_eval_" + uuid.uuid4().hex[:6]
        register_coco_instances(name, {"thing_classes": cats}, path, tmp)
        rng = np.random.default_rng(1)
        by_image = {}
        for a in gt["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        outputs = []
        for img in gt["images"]:
            s = img["width"]
            boxes = rng.uniform(0, s, size=(dets_per_image, 2))
            boxes = np.concatenate([boxes, boxes + rng.uniform(4, s / 3, (dets_per_image, 2))], 1)
            for k, a in enumerate(by_image.get(img["id"], [])[:dets_per_image]):
                x, y, w, h = a["bbox"]
                boxes[k] = np.array([x, y, x + w, y + h]) + rng.normal(0, 0.1 * w, 4)
            inst = Instances((s, s))
            inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
            inst.scores = torch.tensor(np.sort(rng.uniform(0.05, 1, dets_per_image))[::-1].copy())
            inst.pred_classes = torch.tensor(rng.integers(0, 6, dets_per_image))
            outputs.append(({"image_id": img["id"]}, {"instances": inst}))
        c0, t0 = time.process_time(), time.perf_counter()
        ev = ShiftedIdCOCOEvaluator(name, distributed=False, use_fast_impl=use_fast_impl)
        ev.reset()
        t1 = time.perf_counter()
        for inp, out in outputs:
            ev.process([inp], [out])
        t2 = time.perf_counter()
        arrays = bool(ev._predictions) and isinstance(ev._predictions[0]["instances"], dict)
        with contextlib.redirect_stdout(io.StringIO()):
            results = ev.evaluate()["bbox"]
        t3, c3 = time.perf_counter(), time.process_time()
    from detectron2.evaluation import coco_evaluation

    from sar_lora_dino.data.box_cocoeval import BoxCOCOeval

    backend = coco_evaluation.COCOeval_opt if use_fast_impl else coco_evaluation.COCOeval
    backend = BoxCOCOeval if arrays else backend
    return {
        "backend": f"{backend.__module__}.{backend.__name__}",
        "images": num_images,
        "gt_boxes": len(gt["annotations"]),
        "detections": num_images * dets_per_image,
        "load_s": round(t1 - t0, 2),
        "process_s": round(t2 - t1, 2),
        "evaluate_s": round(t3 - t2, 2),
        "total_s": round(t3 - t0, 2),
        "cpu_s": round(c3 - c0, 2),
        "AP": results["AP"],
        "AP50": results["AP50"],
        "per_class_AP": {c: results[f"AP-{c}"] for c in cats},
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
