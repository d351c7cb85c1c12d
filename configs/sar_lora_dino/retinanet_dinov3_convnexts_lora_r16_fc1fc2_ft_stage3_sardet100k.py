"""Ablation: LoRA r16 on mlp.fc1 + mlp.fc2 + the last stage trainable (paper: 0.539 / 0.516)."""

from .retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.trainable_stages = [3]
