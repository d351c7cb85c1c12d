"""Full fine-tune of the DINOv3 ConvNeXt-S backbone, no LoRA (paper: 58.856M params)."""

from ..common.data.sardet100k import dataloader
from ..common.models.retinanet_convnext import model
from ..common.optim import optimizer
from ..common.schedule_1x import lr_multiplier, train

model.backbone.bottom_up.finetune = "full"
