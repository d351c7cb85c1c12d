"""LoRA r16 on mlp.fc1 + mlp.fc2 of every block, frozen DINOv3 ConvNeXt-S (paper: 11.569M params)."""

from ..common.data.sardet100k import dataloader
from ..common.models.retinanet_convnext import model
from ..common.optim import optimizer
from ..common.schedule_1x import lr_multiplier, train

model.backbone.bottom_up.finetune = "lora"
model.backbone.bottom_up.lora_r = 16
model.backbone.bottom_up.lora_alpha = 32
model.backbone.bottom_up.lora_targets = ["mlp.fc1", "mlp.fc2"]
