"""FCOS with the whole DINOv3 ConvNeXt-S backbone fine-tuned, no LoRA."""

from .fcos_dinov3_convnexts_linear_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.finetune = "full"
