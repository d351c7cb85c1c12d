"""The single switch between the original's semantics and detectron2's, and its one table."""

import inspect
import os
import re

import pytest
from _models import tiny_config
from detectron2.config import instantiate

from sar_lora_dino.data.filtering import get_sardet_train_dicts
from sar_lora_dino.semantics import DIFFERENCES, set_semantics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_FIELDS = [
    d.field[len("model.") :] for d in DIFFERENCES if (d.field or "").startswith("model.")
]


def _config():
    """The tiny config's model and dataloader: the shipped wiring of every switch."""
    cfg = tiny_config()
    return cfg.model, cfg.dataloader


def _is_set(cfg, field):
    *parents, leaf = field.split(".")
    for name in parents:
        cfg = cfg[name]
    return leaf in cfg


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
    # the shipped config leaves every switch to our components' defaults
    assert not [f for f in MODEL_FIELDS if _is_set(model_cfg, f)]
    assert all("backend" not in data_cfg[s].mapper.augmentations[0] for s in ("train", "test"))
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
    assert [row[1] for row in rows[:9]] == [
        f"`{d.field}`: `{d.original}` → `{d.detectron2}`" for d in DIFFERENCES
    ]
    assert rows[9][1] == "(converter only)"
