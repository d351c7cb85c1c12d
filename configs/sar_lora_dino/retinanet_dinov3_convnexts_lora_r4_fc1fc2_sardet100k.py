"""Ablation: LoRA r4 on mlp.fc1 + mlp.fc2 (paper: 0.508 val / 0.479 test mAP)."""

from .retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.lora_r = 4
model.backbone.bottom_up.lora_alpha = 8  # alpha = 2r keeps the r16 setting's scaling of 2
