"""Tiny RetinaNet builders shared by the fidelity tests."""

import torch
from conftest import build_retinanet
from detectron2.modeling import Backbone
from torch import nn

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
    return build_retinanet(
        bottom_up,
        fpn_channels=fpn_channels,
        num_classes=NUM_CLASSES,
        num_convs=2,
        pixel_mean=(0.0, 0.0, 0.0),
        pixel_std=(1.0, 1.0, 1.0),
        **switches,
    )
