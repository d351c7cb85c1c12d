"""The FCOS project's LoRA r16 fc1+fc2 config shrunk to seconds on a CPU."""

from ...projects.FCOS_LoRA.configs.fcos_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)
from .tiny_run import shrink_run

# One block per stage, 16-128 channels; FPN and head at 64 channels: GroupNorm's 32 groups need
# more than one value each, and P7 of a 96x128 image is 1x1. P6/P7 and the head read
# out_channels.
model.backbone.bottom_up.depths = [1, 1, 1, 1]
model.backbone.bottom_up.dims = [16, 32, 64, 128]
model.backbone.out_channels = 64
model.head.conv_dims = [64]
# Keep every candidate so that a barely trained model still yields a non-trivial AP.
model.test_score_thresh = 0.0
model.max_detections_per_image = 20

shrink_run(dataloader, optimizer, lr_multiplier, train)
