"""Shared pieces of the engine tests: a tiny synthetic SARDet root and the tiny config."""

import argparse
import io
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = os.path.join(REPO, "tests", "configs", "tiny_lora_r16_fc1fc2.py")


def make_tiny_root(root, prefix):
    """Write 8 train / 4 val images of 128 px and register them as ``{prefix}_{train,val}``."""
    from sar_lora_dino.data import make_synthetic_sardet, register_sardet100k

    make_synthetic_sardet(root, num_train=8, num_val=4, num_test=0, sizes=(128,), seed=0)
    register_sardet100k(root=root, prefix=prefix, splits=("train", "val"))
    return root


def tiny_cfg(output_dir, prefix, extra=(), eval_only=False, resume=False):
    """Load the tiny config for datasets ``prefix_*``; returns (cfg, args) after setup."""
    from sar_lora_dino.engine import load_config, setup

    opts = [
        f"train.output_dir={output_dir}",
        f"dataloader.train.dataset.names={prefix}_train",
        f"dataloader.test.dataset.names={prefix}_val",
        *extra,
    ]
    args = argparse.Namespace(
        config_file=TINY_CONFIG, opts=opts, eval_only=eval_only, resume=resume
    )
    cfg = load_config(TINY_CONFIG, opts)
    setup(cfg, args)
    return cfg, args


def build_tiny_model(overrides=(), seed=0):
    """
    The model of the tiny config (the shipped ``configs/common`` wiring, shrunk), built after
    ``key=value`` overrides such as ``model.backbone.bottom_up.finetune=full``.
    """
    import torch
    from detectron2.config import instantiate

    from sar_lora_dino.engine import load_config

    cfg = load_config(TINY_CONFIG, list(overrides))
    torch.manual_seed(seed)
    return instantiate(cfg.model)


def run_train_net(root, *opts, timeout=240):
    """Run tools/lazyconfig_train_net.py on the tiny config with ``root`` as SARDET100K_ROOT."""
    path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, SARDET100K_ROOT=root, PYTHONPATH=path, DINOV3_WEIGHTS="")
    script = os.path.join(REPO, "tools", "lazyconfig_train_net.py")
    cmd = [sys.executable, script, "--config-file", TINY_CONFIG, *opts]
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def train_child(root, prefix, out, opts, resume, kill_at_save, conn):
    """
    Train the tiny config in a child process and report progress on ``conn``:
    ``("step", i, total_loss)`` after each iteration, ``("saving", path)`` when the
    ``kill_at_save``-th checkpoint save is half written (the save then waits to be killed),
    ``("done", None)`` at the end.
    """
    import time

    import torch
    from detectron2.engine import HookBase

    from sar_lora_dino.data import register_sardet100k
    from sar_lora_dino.engine import do_train

    torch.set_num_threads(1)
    register_sardet100k(root=root, prefix=prefix, splits=("train", "val"))
    cfg, args = tiny_cfg(out, prefix, opts, resume=resume)
    real_save, saves = torch.save, []

    def save(obj, f, *a, **k):
        if kill_at_save is None or len(saves) != kill_at_save or not hasattr(f, "name"):
            saves.append(1)
            return real_save(obj, f, *a, **k)
        buffer = io.BytesIO()
        real_save(obj, buffer, *a, **k)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        conn.send(("saving", f.name))
        time.sleep(600)

    torch.save = save

    class Beacon(HookBase):
        def after_step(self):
            loss = self.trainer.storage.history("total_loss").latest()
            conn.send(("step", self.trainer.iter, loss))

    do_train(cfg, args, resume=resume, extra_hooks=[Beacon()])
    conn.send(("done", None))


def corrupt_on_one_rank_child(root, prefix, out, opts, bad_rank, after_iteration):
    """
    Train the tiny config in one of several gloo processes; after ``after_iteration`` the
    process of rank ``bad_rank`` overwrites the next training image it will read (and only
    it) with bytes that are not an image.
    """
    import copy

    from detectron2.engine import HookBase
    from detectron2.utils import comm

    from sar_lora_dino.data import register_sardet100k
    from sar_lora_dino.engine import do_train

    register_sardet100k(root=root, prefix=prefix, splits=("train", "val"))
    cfg, args = tiny_cfg(out, prefix, opts)

    class _CorruptMyNextImage(HookBase):
        def after_step(self):
            if self.trainer.iter != after_iteration or comm.get_rank() != bad_rank:
                return
            loader = self.trainer.data_loader
            batch = copy.deepcopy(loader.sampler).next_batch()
            local = len(batch) // comm.get_world_size()
            mine = {loader._dataset[i]["file_name"] for i in batch[bad_rank * local :][:local]}
            others = {loader._dataset[i]["file_name"] for i in batch} - mine
            for path in sorted(mine - others):
                with open(path, "wb") as f:
                    f.write(b"not an image")

    do_train(cfg, args, extra_hooks=[_CorruptMyNextImage()])


def fpn_output_recorder():
    """
    A hook that records ``(dtype, device type)`` of the first FPN output conv in training steps
    (``.seen``): what autocast really ran.
    """
    from detectron2.engine import HookBase

    class _Dtypes(HookBase):
        def __init__(self):
            self.seen = set()

        def before_train(self):
            self.trainer.model.backbone.fpn_output3.register_forward_hook(
                lambda m, i, o: self.seen.add((o.dtype, o.device.type)) if m.training else None
            )

    return _Dtypes()
