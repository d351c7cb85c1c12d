"""FCOS on a frozen DINOv3 ConvNeXt-S: only FPN and head train."""

from .fcos_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.finetune = "frozen"
