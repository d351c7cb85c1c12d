"""The Faster R-CNN project's LoRA r16 fc1+fc2 config shrunk to seconds on a CPU."""

from detectron2.layers import ShapeSpec

from ...projects.FasterRCNN_LoRA.configs.faster_rcnn_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (  # noqa: E501
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

# One block per stage, 16-128 channels; FPN at 32 channels, a 64-wide box head.
model.backbone.bottom_up.depths = [1, 1, 1, 1]
model.backbone.bottom_up.dims = [16, 32, 64, 128]
model.backbone.out_channels = 32
model.proposal_generator.head.in_channels = 32
model.proposal_generator.batch_size_per_image = 64
model.proposal_generator.post_nms_topk = (200, 100)
model.roi_heads.batch_size_per_image = 64
model.roi_heads.box_head.input_shape = ShapeSpec(channels=32, height=7, width=7)
model.roi_heads.box_head.fc_dims = [64]
model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=64)
# Keep every candidate so that a barely trained model still yields a non-trivial AP.
model.roi_heads.box_predictor.test_score_thresh = 0.0
model.roi_heads.box_predictor.test_topk_per_image = 20

dataloader.image_scale = [128, 96]  # (w, h)
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 0
dataloader.test.num_workers = 0

optimizer.lr = 1e-3
lr_multiplier.scheduler.milestones = [3, 5]
lr_multiplier.scheduler.num_updates = 6
lr_multiplier.warmup_length = 2 / 6

train.max_iter = 6
train.eval_period = 3
train.checkpointer = dict(period=3, max_to_keep=2)
train.log_period = 1
train.device = "cpu"
train.seed = 0
train.init_checkpoint = ""
train.allow_random_init = True
