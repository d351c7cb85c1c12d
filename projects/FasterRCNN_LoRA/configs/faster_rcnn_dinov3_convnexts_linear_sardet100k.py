"""Faster R-CNN on a frozen DINOv3 ConvNeXt-S: only FPN, RPN and box head train."""

from ....configs.common.data.sardet100k import dataloader
from ....configs.common.optim import optimizer
from ....configs.common.schedule_1x import lr_multiplier, train
from .common.faster_rcnn_convnext_fpn import model

# the common backbone is frozen (finetune="frozen")
