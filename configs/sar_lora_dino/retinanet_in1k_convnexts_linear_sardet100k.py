"""Baseline: frozen ImageNet-supervised ConvNeXt-S (timm convnext_small), linear probe (paper: 0.401 val)."""

import os

from .retinanet_dinov3_convnexts_linear_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

# Same architecture and normalisation; only the weights differ (a timm-layout file).
train.init_checkpoint = os.environ.get("CONVNEXT_IN1K_WEIGHTS", "")
train.weights_env = "CONVNEXT_IN1K_WEIGHTS"
