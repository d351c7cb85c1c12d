"""Faster R-CNN, LoRA r16 on mlp.fc1 + mlp.fc2 of every block of a frozen DINOv3 ConvNeXt-S."""

from ....configs.common.data.sardet100k import dataloader
from ....configs.common.optim import optimizer
from ....configs.common.schedule_1x import lr_multiplier, train
from .common.faster_rcnn_convnext_fpn import model

model.backbone.bottom_up.finetune = "lora"
model.backbone.bottom_up.lora_r = 16
model.backbone.bottom_up.lora_alpha = 32
model.backbone.bottom_up.lora_targets = ["mlp.fc1", "mlp.fc2"]
model.backbone.bottom_up.trainable_stages = []
