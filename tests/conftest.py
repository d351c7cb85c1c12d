"""Shared fixtures: the tiny config's backbone, a timm reference and the DINOv3 key layouts."""

import re

import pytest
import timm
import torch
from _models import tiny_backbone as _tiny_backbone

# The timm reference of the checkpoint tests: the tiny config's dims, two blocks in stage 2 so
# that block indices beyond 0 are converted too.
TINY = {"arch": "convnext_small", "depths": [1, 1, 2, 1], "dims": [16, 32, 64, 128]}


@pytest.fixture
def tiny_backbone():
    """Factory: the tiny config's ConvNeXtBackbone with TINY's depths (seeded); kwargs override."""

    def make(**kwargs):
        return _tiny_backbone(**{"depths": TINY["depths"], **kwargs})

    return make


@pytest.fixture
def timm_reference():
    """A tiny timm ConvNeXt with every tensor random (layer scale included, so blocks matter)."""
    torch.manual_seed(1)
    model = timm.create_model(
        "convnext_small", pretrained=False, num_classes=0, depths=TINY["depths"], dims=TINY["dims"]
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model.eval()


def _official_key(key):
    key = re.sub(r"^stem\.", "downsample_layers.0.", key)
    key = re.sub(r"^stages\.(\d)\.downsample\.", r"downsample_layers.\1.", key)
    key = re.sub(r"^stages\.(\d)\.blocks\.(\d+)\.", r"stages.\1.\2.", key)
    return key.replace("conv_dw", "dwconv").replace("mlp.fc", "pwconv")


def _hf_key(key):
    key = re.sub(r"^stem\.", "stages.0.downsample_layers.", key)
    key = re.sub(r"^stages\.(\d)\.downsample\.", r"stages.\1.downsample_layers.", key)
    key = re.sub(r"^stages\.(\d)\.blocks\.", r"stages.\1.layers.", key)
    for old, new in [
        ("conv_dw", "depthwise_conv"),
        (".norm.", ".layer_norm."),
        ("mlp.fc1", "pointwise_conv1"),
        ("mlp.fc2", "pointwise_conv2"),
    ]:
        key = key.replace(old, new)
    return key


def to_layout(model, layout, hf_prefix=""):
    """The timm reference's weights written with the released key names of ``layout``."""
    backbone = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    norm = {p: torch.randn(TINY["dims"][-1]) for p in ("weight", "bias")}
    if layout == "timm":
        return {**backbone, **{f"head.norm.{p}": v for p, v in norm.items()}}
    if layout == "official":
        sd = {_official_key(k): v for k, v in backbone.items()}
        sd.update({f"norm.{p}": v for p, v in norm.items()})
        sd.update({f"norms.3.{p}": v.clone() for p, v in norm.items()})
        return sd
    sd = {hf_prefix + _hf_key(k): v for k, v in backbone.items()}
    sd.update({f"{hf_prefix}layer_norm.{p}": v for p, v in norm.items()})
    return sd
