"""The single switch between the original's semantics and detectron2's, and its one table."""

import inspect
import os
import re

import pytest
from _fidelity_models import TinyBottomUp
from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.meta_arch.retinanet import RetinaNetHead
from omegaconf import OmegaConf

from sar_lora_dino.data.filtering import get_sardet_train_dicts
from sar_lora_dino.data.transforms import SARResize
from sar_lora_dino.modeling.box_transform import SARBox2BoxTransform
from sar_lora_dino.modeling.fpn import SARFPN, SARLastLevelP6P7
from sar_lora_dino.modeling.matcher import SARMatcher
from sar_lora_dino.modeling.retinanet import SARRetinaNet
from sar_lora_dino.semantics import DIFFERENCES, readme_switch, set_semantics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_FIELDS = [
    d.field[len("model.") :] for d in DIFFERENCES if (d.field or "").startswith("model.")
]


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
    dataloader.train = dict(
        dataset=L(get_sardet_train_dicts)(names="x"),
        mapper=dict(augmentations=[L(SARResize)(scale=[64, 48])]),
    )
    dataloader.test = dict(mapper=dict(augmentations=[L(SARResize)(scale=[64, 48])]))
    return model, dataloader


def _switches(model):
    """The built model's value of every model switch of the table, by field."""
    values = {}
    for field in MODEL_FIELDS:
        *parents, leaf = field.split(".")
        node = model
        for name in parents:
            node = getattr(node, name)
        values[field] = getattr(node, "loss_normalizer_mode" if leaf == "loss_normalizer" else leaf)
    return values


# Written out from the measured differences (REFERENCE section 7), not read from the table
# under test, so a wrong row in the table fails here.
EXPECTED = {
    "original": {
        "backbone.top_block.relu_before_p7": False,
        "backbone.init": "xavier_uniform",
        "loss_normalizer": "batch",
        "anchor_matcher.low_quality_assign": "last_gt",
        "clip_before_nms": True,
        "drop_empty_before_nms": True,
        "box2box_transform.two_sided_clamp": True,
    },
    "detectron2": {
        "backbone.top_block.relu_before_p7": True,
        "backbone.init": "c2_xavier",
        "loss_normalizer": "ema",
        "anchor_matcher.low_quality_assign": "argmax",
        "clip_before_nms": False,
        "drop_empty_before_nms": False,
        "box2box_transform.two_sided_clamp": False,
    },
}
EXPECTED_RESIZE = {"original": "opencv", "detectron2": "pil"}


def _data_switches(data_cfg):
    backends = [instantiate(data_cfg[s].mapper.augmentations)[0].backend for s in ("train", "test")]
    return backends, data_cfg.train.dataset.get("filter_mode")


def test_the_table_switches_every_written_out_item():
    assert sorted(MODEL_FIELDS) == sorted(EXPECTED["original"])


@pytest.mark.parametrize("semantics", ["original", "detectron2"])
def test_one_switch_sets_every_item(semantics):
    other = "original" if semantics == "detectron2" else "detectron2"
    model_cfg, data_cfg = _config()
    set_semantics(model_cfg, data_cfg, other)
    set_semantics(model_cfg, data_cfg, semantics)
    assert _switches(instantiate(model_cfg)) == EXPECTED[semantics]
    assert _data_switches(data_cfg) == ([EXPECTED_RESIZE[semantics]] * 2, semantics)


def test_component_defaults_are_the_original():
    model_cfg, data_cfg = _config()
    assert _switches(instantiate(model_cfg)) == EXPECTED["original"]
    assert _data_switches(data_cfg)[0] == ["opencv", "opencv"]
    default = inspect.signature(get_sardet_train_dicts).parameters["filter_mode"].default
    assert default == "original"
    with pytest.raises(ValueError, match="semantics"):
        set_semantics(model_cfg, None, "mmdet")


def test_readme_table_lists_the_switches_in_code():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        rows = [line.split(" | ") for line in f if re.match(r"\| \d+ \| ", line)]
    assert [row[0] for row in rows] == [f"| {i}" for i in range(1, 11)]
    assert [row[1] for row in rows[:9]] == [readme_switch(d) for d in DIFFERENCES]
    assert rows[9][1] == "(converter only)"
