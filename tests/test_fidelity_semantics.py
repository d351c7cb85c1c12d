"""The single switch between the original's semantics and detectron2's."""

import pytest
from _fidelity_models import TinyBottomUp
from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.meta_arch.retinanet import RetinaNetHead
from omegaconf import OmegaConf

from sar_lora_dino.data.transforms import SARResize
from sar_lora_dino.modeling.box_transform import SARBox2BoxTransform
from sar_lora_dino.modeling.fpn import SARFPN, SARLastLevelP6P7
from sar_lora_dino.modeling.matcher import SARMatcher
from sar_lora_dino.modeling.retinanet import SARRetinaNet
from sar_lora_dino.semantics import set_semantics


def _config():
    model = L(SARRetinaNet)(
        backbone=L(SARFPN)(
            bottom_up=L(TinyBottomUp)(),
            in_features=["res3", "res4", "res5"],
            out_channels=16,
            top_block=L(SARLastLevelP6P7)(in_channels=8, out_channels=16),
        ),
        head=L(RetinaNetHead)(
            input_shape=[ShapeSpec(channels=16)] * 5, num_classes=2, conv_dims=[16], num_anchors=9
        ),
        head_in_features=["p3", "p4", "p5", "p6", "p7"],
        anchor_generator=L(DefaultAnchorGenerator)(
            sizes=[[x, x * 2 ** (1 / 3), x * 2 ** (2 / 3)] for x in [32, 64, 128, 256, 512]],
            aspect_ratios=[0.5, 1.0, 2.0],
            strides=[8, 16, 32, 64, 128],
        ),
        box2box_transform=L(SARBox2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0]),
        anchor_matcher=L(SARMatcher)(thresholds=[0.4, 0.5], labels=[0, -1, 1]),
        num_classes=2,
        pixel_mean=[0.0, 0.0, 0.0],
        pixel_std=[1.0, 1.0, 1.0],
    )
    dataloader = OmegaConf.create()
    dataloader.train = dict(mapper=dict(augmentations=[L(SARResize)(scale=[64, 48])]))
    dataloader.test = dict(mapper=dict(augmentations=[L(SARResize)(scale=[64, 48])]))
    return model, dataloader


def _switches(model):
    return (
        model.backbone.top_block.relu_before_p7,
        model.backbone.init,
        model.loss_normalizer_mode,
        model.anchor_matcher.low_quality_assign,
        model.clip_before_nms,
        model.drop_empty_before_nms,
        model.box2box_transform.two_sided_clamp,
    )


# Written out from the measured differences (REFERENCE section 7), not read from SEMANTICS:
# P7 ReLU, FPN init, loss normaliser, low-quality matches, clip / drop-empty before NMS, clamp.
EXPECTED = {
    "original": (False, "xavier_uniform", "batch", "last_gt", True, True, True),
    "detectron2": (True, "c2_xavier", "ema", "argmax", False, False, False),
}


@pytest.mark.parametrize("semantics, pick", [("original", 0), ("detectron2", 1)])
def test_one_switch_sets_every_item(semantics, pick):
    model_cfg, data_cfg = _config()
    set_semantics(model_cfg, data_cfg, "detectron2" if pick == 0 else "original")
    set_semantics(model_cfg, data_cfg, semantics)
    assert _switches(instantiate(model_cfg)) == EXPECTED[semantics]
    for split in ("train", "test"):
        (resize,) = instantiate(data_cfg[split].mapper.augmentations)
        assert resize.backend == ("opencv", "pil")[pick]


def test_component_defaults_are_the_original():
    model_cfg, _ = _config()
    assert _switches(instantiate(model_cfg)) == EXPECTED["original"]
    with pytest.raises(ValueError, match="semantics"):
        set_semantics(model_cfg, None, "mmdet")
