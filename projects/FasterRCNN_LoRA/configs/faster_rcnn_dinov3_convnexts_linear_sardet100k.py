"""Faster R-CNN on a frozen DINOv3 ConvNeXt-S: only FPN, RPN and box head train."""

from .faster_rcnn_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.finetune = "frozen"
