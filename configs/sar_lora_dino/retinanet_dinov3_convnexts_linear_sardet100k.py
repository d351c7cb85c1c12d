"""Linear probe: frozen DINOv3 ConvNeXt-S, only FPN + head train (paper: 9.403M params)."""

from ..common.data.sardet100k import dataloader
from ..common.models.retinanet_convnext import model
from ..common.optim import optimizer
from ..common.schedule_1x import lr_multiplier, train

# configs/common builds the linear probe: the backbone is frozen (finetune="frozen").
