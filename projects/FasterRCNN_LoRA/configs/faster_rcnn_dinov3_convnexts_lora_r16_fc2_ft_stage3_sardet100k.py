"""Faster R-CNN, LoRA r16 on mlp.fc2 + the whole last stage of DINOv3 ConvNeXt-S trainable."""

from .faster_rcnn_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.lora_targets = ["mlp.fc2"]
model.backbone.bottom_up.trainable_stages = [3]
