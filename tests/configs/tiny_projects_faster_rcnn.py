"""The Faster R-CNN project's LoRA r16 fc1+fc2 config shrunk to seconds on a CPU."""

from detectron2.layers import ShapeSpec

from ...projects.FasterRCNN_LoRA.configs.faster_rcnn_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (  # noqa: E501
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)
from .tiny_run import shrink_run

# One block per stage, 16-128 channels; FPN at 32 channels (the RPN and box heads read it), a
# 64-wide box head.
model.backbone.bottom_up.depths = [1, 1, 1, 1]
model.backbone.bottom_up.dims = [16, 32, 64, 128]
model.backbone.out_channels = 32
model.proposal_generator.batch_size_per_image = 64
model.proposal_generator.post_nms_topk = (200, 100)
model.roi_heads.batch_size_per_image = 64
model.roi_heads.box_head.fc_dims = [64]
model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=64)
# Keep every candidate so that a barely trained model still yields a non-trivial AP.
model.roi_heads.box_predictor.test_score_thresh = 0.0
model.roi_heads.box_predictor.test_topk_per_image = 20

shrink_run(dataloader, optimizer, lr_multiplier, train)
