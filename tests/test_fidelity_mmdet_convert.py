"""Item 10 and the converter: the original's MMDetection checkpoints in our model."""

import importlib.util
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from _mmdet import mmdet_checkpoint, mmdet_names
from _models import tiny_model

from sar_lora_dino.checkpoint.inert_pickle import InertObject, load_torch_file
from sar_lora_dino.checkpoint.mmdet import (
    anchor_permutation,
    convert_mmdet_state_dict,
    is_mmdet_state_dict,
)

_TOOL = Path(__file__).resolve().parents[1] / "tools" / "convert_mmdet_to_d2.py"

NUM_CONVS = 2  # head convs per branch in the tiny model


def _model():
    model = tiny_model(
        bottom_up={"lora_r": 4, "dims": [8, 16, 32, 64]},
        overrides={"backbone.out_channels": 16, "head.conv_dims": [16] * NUM_CONVS},
    )
    with torch.no_grad():
        for p in model.parameters():  # lora_B starts at zero: make every tensor distinct
            p.copy_(torch.randn_like(p))
    return model


def _mmdet_cell_anchors(base=32.0, ratios=(0.5, 1.0, 2.0), scales_per_octave=3):
    """MMDetection AnchorGenerator base anchors (scale_major=True): ratio-major (w, h)."""
    scales = [2 ** (i / scales_per_octave) for i in range(scales_per_octave)]
    return [(base / math.sqrt(r) * s, base * math.sqrt(r) * s) for r in ratios for s in scales]


def test_anchor_permutation_matches_the_two_generators():
    model = _model()
    d2_cell = list(model.anchor_generator.cell_anchors)[0]  # stride 8, sizes 32..50.8
    d2_wh = (d2_cell[:, 2:] - d2_cell[:, :2]).tolist()
    mm_wh = _mmdet_cell_anchors()
    perm = anchor_permutation()
    assert perm == [0, 3, 6, 1, 4, 7, 2, 5, 8]
    for d, m in enumerate(perm):
        assert d2_wh[d] == pytest.approx(mm_wh[m], rel=1e-5)


def test_mmdet_checkpoint_loads_with_reordered_head():
    model = _model()
    d2_sd = model.state_dict()
    mm = mmdet_checkpoint(d2_sd, lora_form="transposed")
    assert any(".base.weight" in k for k in mm) and any(k.endswith("lora_A") for k in mm)
    assert is_mmdet_state_dict(mm) and not is_mmdet_state_dict(d2_sd)

    converted = convert_mmdet_state_dict(mm)
    assert set(converted) == set(d2_sd)
    fresh = _model()
    fresh.load_state_dict(converted, strict=True)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, d2_sd[key]), key

    # the cls output bias, followed by hand: d2 anchor d holds MMDetection anchor perm[d]
    k = model.num_classes
    mm_cls = mm["bbox_head.retina_cls.bias"].reshape(9, k)
    for d, m in enumerate(anchor_permutation()):
        assert torch.equal(converted["head.cls_score.bias"][d * k : (d + 1) * k], mm_cls[m])


def test_round_trip_both_ways():
    d2_sd = _model().state_dict()
    for lora_form in ("linear", "tensor", "transposed"):
        back = convert_mmdet_state_dict(mmdet_checkpoint(d2_sd, lora_form))
        assert set(back) == set(d2_sd) and all(torch.equal(back[k], d2_sd[k]) for k in d2_sd)


def test_unknown_keys_and_incomplete_lora_are_named():
    mm = mmdet_names(_model().state_dict())
    with pytest.raises(KeyError, match="bn.weight"):
        convert_mmdet_state_dict({**mm, "neck.fpn_convs.0.bn.weight": torch.zeros(1)})
    broken = {
        k: v for k, v in mm.items() if not k.endswith("stages.0.blocks.0.mlp.fc1.lora_B.weight")
    }
    with pytest.raises(KeyError, match="stages.0.blocks.0.mlp.fc1"):
        convert_mmdet_state_dict(broken)


def convert_main(argv):
    spec = importlib.util.spec_from_file_location("convert_mmdet_to_d2", _TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(argv)


def test_command_line_tool(tmp_path):
    d2_sd = _model().state_dict()
    src, dst = tmp_path / "mmdet.pth", tmp_path / "d2.pth"
    torch.save({"meta": {"epoch": 12, "classes": ("ship",)}, "state_dict": mmdet_names(d2_sd)}, src)
    convert_main([str(src), str(dst)])
    out = torch.load(dst, weights_only=True)
    assert out["matching_heuristics"] is False and set(out["model"]) == set(d2_sd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d2.pth", "mmdet.pth"]  # no temp left


def test_command_line_tool_reads_a_runner_checkpoint_without_running_it(tmp_path):
    d2_sd = _model().state_dict()
    src, dst, marker = (
        tmp_path / "best_coco_bbox_mAP_epoch_9.pth",
        tmp_path / "d2.pth",
        tmp_path / "ran",
    )
    _save_like_mmengine_runner(src, mmdet_checkpoint(d2_sd, "linear"), marker)
    convert_main([str(src), str(dst)])
    assert not marker.exists()  # the pickled call was not made
    out = torch.load(dst, weights_only=True)
    assert all(torch.equal(out["model"][k], v) for k, v in d2_sd.items())


def test_timm_features_only_names_are_accepted():
    out = convert_mmdet_state_dict(
        {"backbone.backbone.stem_0.weight": torch.zeros(1), "backbone.backbone.stages_2.x": 1}
    )
    assert list(out) == ["backbone.bottom_up.stem.0.weight", "backbone.bottom_up.stages.2.x"]


def test_checkpointer_reads_the_original_checkpoint(tmp_path):
    from sar_lora_dino.checkpoint.checkpointer import MultiFormatCheckpointer

    d2_sd = _model().state_dict()
    path = tmp_path / "epoch_12.pth"
    _save_like_mmengine_runner(path, mmdet_checkpoint(d2_sd, "linear"), tmp_path / "ran")
    assert "mmengine" not in sys.modules
    fresh = _model()
    MultiFormatCheckpointer(fresh).load(str(path))
    assert all(torch.equal(v, d2_sd[k]) for k, v in fresh.state_dict().items())
    assert not (tmp_path / "ran").exists()


def test_runner_objects_become_inert_placeholders(tmp_path):
    path, marker = tmp_path / "epoch_12.pth", tmp_path / "ran"
    _save_like_mmengine_runner(path, {"bbox_head.retina_cls.bias": torch.ones(3)}, marker)
    ckpt = load_torch_file(str(path))
    assert torch.equal(ckpt["state_dict"]["bbox_head.retina_cls.bias"], torch.ones(3))
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == 1e-4
    assert torch.equal(ckpt["optimizer"]["state"][0]["exp_avg"], torch.zeros(3))
    loss = ckpt["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(loss, InertObject) and type(loss).__module__ == _HISTORY_BUFFER
    assert loss.state["max_length"] == 10 and isinstance(loss.state["_log_history"], InertObject)
    assert isinstance(ckpt["meta"]["seed"], InertObject)  # a numpy scalar
    hook = ckpt["meta"]["hook"]
    assert isinstance(hook, InertObject) and hook.args == (str(marker),)
    assert not marker.exists()


_HISTORY_BUFFER = "mmengine.logging.history_buffer"


def _save_like_mmengine_runner(path, state_dict, marker):
    """
    Save ``state_dict`` the way MMEngine's runner saves a checkpoint (meta with numpy scalars,
    message_hub of HistoryBuffer objects, optimizer state), with stand-in MMEngine classes
    under MMEngine's module paths that exist only while saving. One object pickles as a call
    that would create ``marker``: loading must not make it.
    """
    modules = {
        name: types.ModuleType(name)
        for name in ("mmengine", "mmengine.logging", _HISTORY_BUFFER, "mmengine.hooks")
    }

    class HistoryBuffer:
        def __init__(self):
            self._log_history = np.array([1.5, 1.2])
            self._count_history = np.array([1, 1])
            self.max_length = 10

    def touch(name):
        Path(name).touch()

    class Hook:
        def __reduce__(self):
            return touch, (str(marker),)

    for obj, module in (
        (HistoryBuffer, _HISTORY_BUFFER),
        (touch, "mmengine.hooks"),
        (Hook, "mmengine.hooks"),
    ):
        obj.__module__, obj.__qualname__ = module, obj.__name__
        setattr(modules[module], obj.__name__, obj)
    checkpoint = {
        "meta": {"epoch": 12, "iter": 70872, "seed": np.int64(0), "hook": Hook()},
        "state_dict": state_dict,
        "message_hub": {
            "log_scalars": {"train/loss": HistoryBuffer()},
            "runtime_info": {"epoch": 12, "best_score": np.float64(0.523)},
        },
        "optimizer": {
            "state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.zeros(3)}},
            "param_groups": [{"lr": 1e-4, "weight_decay": 0.05, "params": [0]}],
        },
    }
    sys.modules.update(modules)
    try:
        torch.save(checkpoint, path)
    finally:
        for name in modules:
            del sys.modules[name]
