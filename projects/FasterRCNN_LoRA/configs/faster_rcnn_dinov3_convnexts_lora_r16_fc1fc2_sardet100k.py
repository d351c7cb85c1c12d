"""Faster R-CNN, LoRA r16 on mlp.fc1 + mlp.fc2 of every block of a frozen DINOv3 ConvNeXt-S."""

from .faster_rcnn_dinov3_convnexts_linear_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.finetune = "lora"
model.backbone.bottom_up.lora_r = 16
model.backbone.bottom_up.lora_alpha = 32
model.backbone.bottom_up.lora_targets = ["mlp.fc1", "mlp.fc2"]
