"""Shared fixtures: tiny ConvNeXt backbones, a tiny detectron2 RetinaNet and DINOv3 layouts."""

import re

import pytest
import timm
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.meta_arch.retinanet import RetinaNetHead

from sar_lora_dino.modeling import (
    SARFPN,
    ConvNeXtBackbone,
    SARBox2BoxTransform,
    SARLastLevelP6P7,
    SARMatcher,
    SARRetinaNet,
)

TINY = {"arch": "convnext_small", "depths": (1, 1, 2, 1), "dims": (16, 32, 64, 128)}


def build_retinanet(
    backbone,
    fpn_channels=32,
    num_classes=6,
    num_convs=4,
    pixel_mean=(123.675, 116.28, 103.53),
    pixel_std=(58.395, 57.12, 57.375),
    **switches,
):
    """
    RetinaNet + FPN (P3-P7, P6 from C5) built from our components with the original's anchors
    and matching; ``switches`` go to :class:`SARRetinaNet` (e.g. ``loss_normalizer="ema"``).
    """
    c5 = backbone.output_shape()["res5"].channels
    fpn = SARFPN(
        bottom_up=backbone,
        in_features=["res3", "res4", "res5"],
        out_channels=fpn_channels,
        top_block=SARLastLevelP6P7(c5, fpn_channels, in_feature="res5"),
    )
    head = RetinaNetHead(
        input_shape=[ShapeSpec(channels=fpn_channels)] * 5,
        num_classes=num_classes,
        num_anchors=9,
        conv_dims=[fpn_channels] * num_convs,
    )
    anchors = DefaultAnchorGenerator(
        sizes=[[x, x * 2 ** (1 / 3), x * 2 ** (2 / 3)] for x in (32, 64, 128, 256, 512)],
        aspect_ratios=[0.5, 1.0, 2.0],
        strides=[8, 16, 32, 64, 128],
        offset=0.0,
    )
    return SARRetinaNet(
        backbone=fpn,
        head=head,
        head_in_features=["p3", "p4", "p5", "p6", "p7"],
        anchor_generator=anchors,
        box2box_transform=SARBox2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0)),
        anchor_matcher=SARMatcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True),
        num_classes=num_classes,
        pixel_mean=list(pixel_mean),
        pixel_std=list(pixel_std),
        input_format="RGB",
        **switches,
    )


@pytest.fixture
def tiny_backbone():
    """Factory: a seeded tiny ConvNeXtBackbone (Linear MLPs); kwargs override."""

    def make(**kwargs):
        torch.manual_seed(0)
        return ConvNeXtBackbone(**{**TINY, **kwargs})

    return make


@pytest.fixture
def tiny_retinanet():
    """Factory: RetinaNet(FPN(tiny ConvNeXtBackbone)); kwargs go to the backbone."""

    def make(**kwargs):
        torch.manual_seed(0)
        return build_retinanet(ConvNeXtBackbone(**{**TINY, **kwargs}))

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
