"""Full fine-tune of the DINOv3 ConvNeXt-S backbone, no LoRA (paper: 58.856M params)."""

from .retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.finetune = "full"
