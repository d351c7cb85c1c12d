"""The product's CUDA path: fp16 with a GradScaler, bf16, AMP state on resume, COCO evaluation and
LoRA merging on the GPU. Skipped without CUDA; ``tools/gpu_check.sh`` runs them (``-m cuda``)."""

import json
import os

import pytest
import torch
from _models import tiny_backbone
from detectron2.engine import HookBase
from engine_helpers import fpn_output_recorder, make_tiny_root, tiny_cfg

from sar_lora_dino.engine import do_eval, do_train
from sar_lora_dino.modeling.lora import LoRALinear, merge_lora, unmerge_lora

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
PREFIX = "cudatest"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_tiny_root(str(tmp_path_factory.mktemp("cuda") / "root"), PREFIX)


class _Scale(HookBase):
    def __init__(self):
        self.seen = []

    def before_train(self):
        self.seen.append(self.trainer.grad_scaler.get_scale())


def _amp(dtype, scaler):
    return [
        "train.device=cuda",
        "train.amp.enabled=True",
        f"train.amp.dtype={dtype}",
        f"train.amp.grad_scaler={scaler}",
        "train.clip_grad.max_norm=1.0",
    ]


def test_fp16_grad_scaler_state_is_checkpointed_and_resumed(data_root, tmp_path):
    out = str(tmp_path)
    amp = [*_amp("float16", True), "train.eval_period=0"]
    cfg, args = tiny_cfg(out, PREFIX, [*amp, "train.max_iter=2"])
    dtypes = fpn_output_recorder()
    do_train(cfg, args, extra_hooks=[dtypes])
    assert dtypes.seen == {(torch.float16, "cuda")}
    path = os.path.join(out, "model_final.pth")
    state = torch.load(path, weights_only=True)
    assert state["trainer"]["grad_scaler"]["scale"] > 0
    state["trainer"]["grad_scaler"]["scale"] = 512.0  # a distinctive scale must come back
    torch.save(state, path)
    scale = _Scale()
    cfg, args = tiny_cfg(out, PREFIX, [*amp, "train.max_iter=3"], resume=True)
    do_train(cfg, args, resume=True, extra_hooks=[scale])
    assert scale.seen == [512.0]
    with open(os.path.join(out, "metrics.json")) as f:
        records = [json.loads(line) for line in f]
    assert [r["iteration"] for r in records if "total_loss" in r] == [0, 1, 2]


def test_bf16_autocast_on_cuda(data_root, tmp_path):
    cfg, args = tiny_cfg(
        str(tmp_path), PREFIX, [*_amp("bfloat16", False), "train.max_iter=1", "train.eval_period=0"]
    )
    dtypes = fpn_output_recorder()
    do_train(cfg, args, extra_hooks=[dtypes])
    assert dtypes.seen == {(torch.bfloat16, "cuda")}


def test_coco_evaluation_on_cuda_matches_the_cpu(data_root, tmp_path):
    train_dir = str(tmp_path / "train")
    cfg, args = tiny_cfg(train_dir, PREFIX, ["train.device=cuda", "train.max_iter=3"])
    in_training = do_train(cfg, args)
    weights = os.path.join(train_dir, "model_final.pth")
    results = {}
    for device in ("cuda", "cpu"):
        extra = [f"train.device={device}", f"train.init_checkpoint={weights}"]
        cfg, args = tiny_cfg(str(tmp_path / device), PREFIX, extra, eval_only=True)
        results[device] = do_eval(cfg, args)["bbox"]
    assert in_training["bbox"]["AP"] == pytest.approx(results["cuda"]["AP"], abs=1e-9)
    for key in ("AP", "AP50", "AP75"):  # float reordering across devices moves a few scores
        assert results["cuda"][key] == pytest.approx(results["cpu"][key], abs=0.5)


def test_merged_lora_equals_unmerged_on_cuda():
    backbone = tiny_backbone(finetune="lora").cuda().eval()
    layers = [m for m in backbone.modules() if isinstance(m, LoRALinear)]
    for m in layers:
        torch.nn.init.normal_(m.lora_B, std=0.1)
    x = torch.randn(2, 3, 96, 96, device="cuda")
    with torch.no_grad():
        before = backbone(x)["res5"]
        assert merge_lora(backbone) == len(layers) > 0
        merged = backbone(x)["res5"]
        assert unmerge_lora(backbone) == len(layers)
        after = backbone(x)["res5"]
    assert merged.device.type == "cuda"
    torch.testing.assert_close(merged, before, rtol=1e-3, atol=1e-4)  # TF32 may be on
    torch.testing.assert_close(after, before, rtol=0, atol=0)
