"""FCOS on a frozen DINOv3 ConvNeXt-S: only FPN and head train."""

from ....configs.common.data.sardet100k import dataloader
from ....configs.common.optim import optimizer
from ....configs.common.schedule_1x import lr_multiplier, train
from .common.fcos_convnext_fpn import model

# the common backbone is frozen (finetune="frozen")

# detectron2's FCOS cannot label an image without boxes (its matcher reduces over zero boxes and
# fails), so training images left without a usable box are dropped, as detectron2 does.
dataloader.train.dataset.filter_mode = "detectron2"
