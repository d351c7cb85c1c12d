"""FCOS (anchor-free) + FPN (P3-P7) on the frozen ConvNeXt-S, as detectron2's stock FCOS."""

from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import FPN
from detectron2.modeling.backbone.fpn import LastLevelP6P7
from detectron2.modeling.meta_arch.fcos import FCOS, FCOSHead

from sar_lora_dino.data.sardet import SARDET100K_CATEGORIES
from sar_lora_dino.modeling.norm import group_norm_32

from .....configs.common.models.convnext import PIXEL_MEAN, PIXEL_STD, backbone

# detectron2's model_zoo common/models/fcos.py on the library's backbone (res3-res5) and input.
model = L(FCOS)(
    backbone=L(FPN)(
        bottom_up=backbone,
        in_features="${.bottom_up.out_features}",
        out_channels=256,
        # P6 = conv(P5), P7 = conv(relu(P6)): FCOS computes P6/P7 from P5, not from C5
        top_block=L(LastLevelP6P7)(
            in_channels="${..out_channels}", out_channels="${..out_channels}", in_feature="p5"
        ),
    ),
    head=L(FCOSHead)(
        input_shape=[L(ShapeSpec)(channels="${....backbone.out_channels}")] * 5,
        conv_dims=[256, 256, 256, 256],
        num_classes="${..num_classes}",
        prior_prob=0.01,
        # GroupNorm(32) = detectron2's "GN"; the string fails on detectron2 v0.6 + current torch
        norm=group_norm_32,
    ),
    head_in_features=["p3", "p4", "p5", "p6", "p7"],
    num_classes=len(SARDET100K_CATEGORIES),
    center_sampling_radius=1.5,
    focal_loss_alpha=0.25,
    focal_loss_gamma=2.0,
    # the score is sqrt(class probability * centerness)
    test_score_thresh=0.2,
    test_topk_candidates=1000,
    test_nms_thresh=0.6,
    max_detections_per_image=100,
    pixel_mean=PIXEL_MEAN,
    pixel_std=PIXEL_STD,
)
