"""LoRA r16 on mlp.fc2 + the whole last stage trainable (paper: 18.876M params, best LoRA setting)."""

from .retinanet_dinov3_convnexts_lora_r16_fc2_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.trainable_stages = [3]
