"""Tiny RetinaNet builders shared by the fidelity tests."""

import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.meta_arch.retinanet import RetinaNetHead
from torch import nn

from sar_lora_dino.modeling.box_transform import SARBox2BoxTransform
from sar_lora_dino.modeling.fpn import SARFPN, SARLastLevelP6P7
from sar_lora_dino.modeling.matcher import SARMatcher
from sar_lora_dino.modeling.retinanet import SARRetinaNet

NUM_CLASSES = 2


class TinyBottomUp(Backbone):
    """res3..res5 (strides 8/16/32, 8 channels) from three strided convs."""

    def __init__(self, channels=8):
        super().__init__()
        self.c3 = nn.Conv2d(3, channels, 3, stride=8, padding=1)
        self.c4 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.c5 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self._out_features = ["res3", "res4", "res5"]
        self._out_feature_channels = {f: channels for f in self._out_features}
        self._out_feature_strides = {"res3": 8, "res4": 16, "res5": 32}

    def forward(self, x):
        c3 = self.c3(x)
        c4 = self.c4(c3)
        return {"res3": c3, "res4": c4, "res5": self.c5(c4)}


def tiny_retinanet(bottom_up=None, fpn_channels=16, **switches):
    """A seeded RetinaNet with our components on ``bottom_up`` (default: TinyBottomUp)."""
    torch.manual_seed(0)
    bottom_up = bottom_up if bottom_up is not None else TinyBottomUp()
    c5 = bottom_up.output_shape()["res5"].channels
    fpn = SARFPN(
        bottom_up=bottom_up,
        in_features=["res3", "res4", "res5"],
        out_channels=fpn_channels,
        top_block=SARLastLevelP6P7(c5, fpn_channels, in_feature="res5"),
    )
    head = RetinaNetHead(
        input_shape=[ShapeSpec(channels=fpn_channels)] * 5,
        num_classes=NUM_CLASSES,
        conv_dims=[fpn_channels] * 2,
        num_anchors=9,
    )
    anchors = DefaultAnchorGenerator(
        sizes=[[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]],
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
        num_classes=NUM_CLASSES,
        pixel_mean=[0.0, 0.0, 0.0],
        pixel_std=[1.0, 1.0, 1.0],
        input_format="RGB",
        **switches,
    )
