"""Ablation: LoRA r16 on mlp.fc1 only (listed in the original, never run there)."""

from .retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.lora_targets = ["mlp.fc1"]
