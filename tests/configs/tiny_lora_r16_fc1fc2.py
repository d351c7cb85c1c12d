"""The shipped LoRA r16 fc1+fc2 config shrunk to seconds on a CPU, for the engine tests."""

from ...configs.sar_lora_dino.retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)
from .tiny_run import shrink_run

# One block per stage, 16-128 channels; FPN and head at 32 channels.
model.backbone.bottom_up.depths = [1, 1, 1, 1]
model.backbone.bottom_up.dims = [16, 32, 64, 128]
model.backbone.top_block.in_channels = 128
model.backbone.out_channels = 32
model.head.conv_dims = [32]
# Keep every candidate so that a barely trained model still yields a non-trivial AP.
model.test_score_thresh = 0.0
model.max_detections_per_image = 20

shrink_run(dataloader, optimizer, lr_multiplier, train)
