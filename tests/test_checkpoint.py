"""DINOv3 weights in every released layout load exactly; wrong files fail with names."""

import os
import sys

import pytest
import torch
from _mmdet import mmdet_checkpoint
from _models import tiny_model
from conftest import TINY, to_layout
from detectron2.checkpoint import DetectionCheckpointer
from safetensors.torch import save_file

from sar_lora_dino.checkpoint import (
    MultiFormatCheckpointer,
    load_dinov3_file,
)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import convert_dinov3_to_d2  # noqa: E402

LAYOUT_FILES = [
    ("official", "", "dinov3_convnext_small.pth", False),
    ("official", "", "wrapped.pth", True),
    ("hf", "", "pytorch_model.bin", False),
    ("hf", "model.", "prefixed.bin", False),
    ("hf", "model.", "model.safetensors", False),
    ("timm", "", "timm.safetensors", False),
]


def _model(**bottom_up):
    """The tiny model with the timm reference's depths; ``bottom_up`` overrides the backbone."""
    return tiny_model(bottom_up={"depths": TINY["depths"], **bottom_up})


def _write(path, state_dict, wrap=False):
    if str(path).endswith(".safetensors"):
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    else:
        torch.save({"model": state_dict} if wrap else state_dict, str(path))
    return str(path)


def _reference_features(model, x):
    out, feats = model.stem(x), []
    for stage in model.stages:
        out = stage(out)
        feats.append(out)
    return feats


@pytest.mark.parametrize("layout, prefix, name, wrap", LAYOUT_FILES)
def test_every_layout_loads_identically(tmp_path, timm_reference, layout, prefix, name, wrap):
    path = _write(tmp_path / name, to_layout(timm_reference, layout, prefix), wrap)
    model = _model(finetune="lora")
    lora_before = {k: v.clone() for k, v in model.state_dict().items() if "lora_" in k}
    MultiFormatCheckpointer(model).load(path)

    state = model.state_dict()
    for key, value in timm_reference.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(state["backbone.bottom_up." + key], value), key
    for key, value in lora_before.items():
        assert torch.equal(state[key], value), key

    backbone = model.backbone.bottom_up.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ours = backbone(x)
        ref = _reference_features(timm_reference, x)
    assert list(ours) == ["res3", "res4", "res5"]  # the FPN's inputs; res2 feeds res3
    for i, feat in enumerate(ref[1:]):
        torch.testing.assert_close(ours[f"res{i + 3}"], feat, rtol=1e-5, atol=1e-5)


def test_dinov3_file_loads_into_the_bare_backbone(tmp_path, tiny_backbone, timm_reference):
    path = _write(tmp_path / "w.pth", to_layout(timm_reference, "official"))
    backbone = tiny_backbone(finetune="full")
    MultiFormatCheckpointer(backbone).load(path)  # every tensor from the file
    reference = timm_reference.state_dict()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, reference[key]), key


def test_detectron2_checkpoint_roundtrip(tmp_path):
    model = _model(finetune="lora")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    MultiFormatCheckpointer(model, save_dir=str(tmp_path)).save("model_final", iteration=7)
    fresh = _model(finetune="lora")
    extra = MultiFormatCheckpointer(fresh).load(str(tmp_path / "model_final.pth"))
    assert extra["iteration"] == 7
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k


def test_random_dict_is_rejected_with_formats(tmp_path):
    path = _write(tmp_path / "random.pth", {"foo.weight": torch.zeros(3), "bar": torch.ones(1)})
    with pytest.raises(ValueError, match=r"random\.pth: unrecognised.*foo\.weight.*DINOv3"):
        MultiFormatCheckpointer(_model()).load(path)
    path = _write(tmp_path / "nested.pth", {"meta": {"a": 1}})
    with pytest.raises(ValueError, match=r"nested\.pth.*'model' or 'state_dict'.*Accepted"):
        MultiFormatCheckpointer(_model()).load(path)


def test_truncated_file_names_the_file(tmp_path, timm_reference):
    path = _write(tmp_path / "cut.pth", to_layout(timm_reference, "official"))
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"Cannot read checkpoint file .*cut\.pth"):
        MultiFormatCheckpointer(_model()).load(path)


def test_missing_and_leftover_keys_are_named(tmp_path, timm_reference):
    sd = to_layout(timm_reference, "official")
    del sd["stages.2.1.gamma"]
    path = _write(tmp_path / "missing.pth", sd)
    with pytest.raises(ValueError, match=r"missing\.pth.*missing.*stages\.2\.blocks\.1\.gamma"):
        load_dinov3_file(path)
    sd = to_layout(timm_reference, "hf")
    sd["stages.1.layers.0.extra_scale"] = torch.ones(1)
    path = _write(tmp_path / "leftover.bin", sd)
    with pytest.raises(ValueError, match=r"leftover\.bin.*stages\.1\.layers\.0\.extra_scale"):
        load_dinov3_file(path)


def test_wrong_variant_fails_on_the_model(tmp_path, timm_reference):
    path = _write(tmp_path / "w.safetensors", to_layout(timm_reference, "timm"))
    with pytest.raises(ValueError, match=r"w\.safetensors does not fit.*shape mismatch"):
        MultiFormatCheckpointer(_model(dims=(16, 32, 64, 96))).load(path)
    with pytest.raises(ValueError, match=r"missing from the file.*stages\.2\.blocks\.2"):
        MultiFormatCheckpointer(_model(depths=(1, 1, 3, 1))).load(path)


def test_mmdet_checkpoint_goes_through_the_real_converter(tmp_path):
    model = _model(finetune="lora")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    target = {k: v.clone() for k, v in model.state_dict().items()}
    mm = mmdet_checkpoint(target, lora_form="tensor")
    assert "bbox_head.retina_cls.weight" in mm and "head.cls_score.weight" not in mm
    path = _write(tmp_path / "mmdet.pth", {"meta": {"epoch": 12}, "state_dict": mm})
    fresh = _model(finetune="lora")
    MultiFormatCheckpointer(fresh).load(path)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, target[key]), key


def test_convert_tool_roundtrip(tmp_path, timm_reference):
    src = _write(tmp_path / "hf.bin", to_layout(timm_reference, "hf", "model."))
    dst = str(tmp_path / "d2.pth")
    convert_dinov3_to_d2.main([src, dst])
    data = torch.load(dst, weights_only=True)
    assert data["matching_heuristics"] is False and "__author__" in data
    assert all(k.startswith("backbone.bottom_up.") for k in data["model"])
    for loader in (DetectionCheckpointer, MultiFormatCheckpointer):
        model = _model(finetune="lora")
        loader(model).load(dst)
        loaded = model.backbone.bottom_up.stages[2].blocks[1].gamma
        assert torch.equal(loaded, timm_reference.stages[2].blocks[1].gamma)

    bad = _write(tmp_path / "bad.pth", {"x": torch.zeros(1)})
    with pytest.raises(ValueError, match="bad.pth"):
        convert_dinov3_to_d2.main([bad, str(tmp_path / "out.pth")])
    assert sorted(os.listdir(tmp_path)) == ["bad.pth", "d2.pth", "hf.bin"]


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_text_file_and_code_running_pickle_are_refused(tmp_path):
    text = tmp_path / "weights.pth"
    text.write_text("this is not a checkpoint\n")
    with pytest.raises(ValueError, match=r"Cannot read checkpoint file .*weights\.pth"):
        MultiFormatCheckpointer(_model()).load(str(text))
    evil = tmp_path / "evil.pth"
    torch.save({"model": _RunsCode()}, str(evil))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(ValueError, match=r"(?s)evil\.pth.*posix.system"):
            MultiFormatCheckpointer(_model()).load(str(evil))
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "pwned").exists()
