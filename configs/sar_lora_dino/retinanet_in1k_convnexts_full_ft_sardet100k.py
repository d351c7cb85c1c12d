"""Baseline: ImageNet-supervised ConvNeXt-S (timm convnext_small), full fine-tune (paper: 0.594 val)."""

import os

from .retinanet_dinov3_convnexts_full_ft_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

# Same architecture and normalisation; only the weights differ (a timm-layout file).
train.init_checkpoint = os.environ.get("CONVNEXT_IN1K_WEIGHTS", "")
train.weights_env = "CONVNEXT_IN1K_WEIGHTS"
