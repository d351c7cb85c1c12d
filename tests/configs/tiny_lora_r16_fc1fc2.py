"""The shipped LoRA r16 fc1+fc2 config shrunk to seconds on a CPU, for the engine tests."""

from ...configs.sar_lora_dino.retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

# One block per stage, 16-128 channels; FPN and head at 32 channels.
model.backbone.bottom_up.depths = [1, 1, 1, 1]
model.backbone.bottom_up.dims = [16, 32, 64, 128]
model.backbone.top_block.in_channels = 128
model.backbone.out_channels = 32
model.head.conv_dims = [32]
# Keep every candidate so that a barely trained model still yields a non-trivial AP.
model.test_score_thresh = 0.0
model.max_detections_per_image = 20

dataloader.image_scale = [128, 96]  # (w, h)
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 0
dataloader.test.num_workers = 0

optimizer.lr = 1e-3
# 6 iterations: 2 of warm-up, then x0.1 at 3 and x0.01 at 5, so the LR differs every step.
lr_multiplier.scheduler.milestones = [3, 5]
lr_multiplier.scheduler.num_updates = 6
lr_multiplier.warmup_length = 2 / 6

train.max_iter = 6
train.eval_period = 3
train.checkpointer.period = 3
train.checkpointer.max_to_keep = 2
train.log_period = 1
train.device = "cpu"
train.seed = 0
train.init_checkpoint = ""
train.allow_random_init = True
