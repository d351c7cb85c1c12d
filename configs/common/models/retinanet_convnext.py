"""RetinaNet + FPN on a LoRA-injected ConvNeXt-S, the detector of the original SAR recipe."""

from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.meta_arch.retinanet import RetinaNetHead

from sar_lora_dino.data.sardet import SARDET100K_CATEGORIES
from sar_lora_dino.modeling import (
    LowQualityReassignMatcher,
    MMDetRetinaNet,
    NoReLULastLevelP6P7,
    TwoSidedClampBox2BoxTransform,
    XavierInitFPN,
)

from .convnext import PIXEL_MEAN, PIXEL_STD, backbone

# Our components default to the original's arithmetic where it differs from detectron2's
# (sar_lora_dino.semantics.DIFFERENCES; set_semantics(model, dataloader, "detectron2") flips it).
model = L(MMDetRetinaNet)(
    backbone=L(XavierInitFPN)(
        bottom_up=backbone,
        in_features=["res3", "res4", "res5"],
        out_channels=256,
        # P6 from C5 (the 768-channel input, as the original's add_extra_convs="on_input").
        top_block=L(NoReLULastLevelP6P7)(
            in_channels=768, out_channels="${..out_channels}", in_feature="res5"
        ),
    ),
    head=L(RetinaNetHead)(
        input_shape=[L(ShapeSpec)(channels="${....backbone.out_channels}")] * 5,
        num_classes="${..num_classes}",
        conv_dims=[256, 256, 256, 256],
        prior_prob=0.01,
        num_anchors=9,
    ),
    head_in_features=["p3", "p4", "p5", "p6", "p7"],
    # strides 8..128, base sizes 32..512, 3 octave scales, ratios 0.5/1/2
    anchor_generator=L(DefaultAnchorGenerator)(
        sizes=[[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]],
        aspect_ratios=[0.5, 1.0, 2.0],
        strides=[8, 16, 32, 64, 128],
        offset=0.0,
    ),
    box2box_transform=L(TwoSidedClampBox2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0]),
    # IoU >= 0.5 positive, < 0.4 negative, low-quality matches allowed
    anchor_matcher=L(LowQualityReassignMatcher)(
        thresholds=[0.4, 0.5], labels=[0, -1, 1], allow_low_quality_matches=True
    ),
    num_classes=len(SARDET100K_CATEGORIES),
    focal_loss_alpha=0.25,
    focal_loss_gamma=2.0,
    smooth_l1_beta=0.0,  # beta 0 = the original's L1 loss on deltas
    box_reg_loss_type="smooth_l1",
    test_score_thresh=0.05,
    test_topk_candidates=1000,
    test_nms_thresh=0.5,
    max_detections_per_image=100,
    pixel_mean=PIXEL_MEAN,
    pixel_std=PIXEL_STD,
    input_format="RGB",
)
