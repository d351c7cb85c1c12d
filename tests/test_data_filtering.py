"""Training-set filtering: the original MMDetection rules versus detectron2's."""

import uuid

import pytest
from _quirks import inject_sardet_quirks
from detectron2.config import LazyCall as L
from detectron2.config import instantiate

from sar_lora_dino.data import get_sardet_train_dicts, make_synthetic_sardet, register_sardet100k


@pytest.fixture(scope="module")
def quirky(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("filt") / "SARDet_100K")
    make_synthetic_sardet(root, num_train=10, num_val=0, num_test=0, seed=5, empty_fraction=0.0)
    quirks = inject_sardet_quirks(root, "train")
    (name,) = register_sardet100k(root, prefix="filt_" + uuid.uuid4().hex[:8], splits=["train"])
    return name, quirks


def test_original_mode(quirky):
    name, quirks = quirky
    dicts = get_sardet_train_dicts(name)  # "original" is the default
    ids = {d["image_id"] for d in dicts}
    assert quirks["no_box"] not in ids  # no annotation at all in the JSON
    assert quirks["tiny"] not in ids  # under 16 px
    assert quirks["all_ignored"] in ids  # every box skipped: kept as an all-negative sample
    kept = {d["image_id"]: d for d in dicts}
    assert kept[quirks["all_ignored"]]["annotations"] == []
    assert any(a["iscrowd"] == 1 for a in kept[quirks["crowd"]]["annotations"])
    assert len(dicts) == 11 - 2


def test_detectron2_mode(quirky):
    name, quirks = quirky
    ids = {d["image_id"] for d in get_sardet_train_dicts([name], filter_mode="detectron2")}
    assert quirks["no_box"] not in ids and quirks["all_ignored"] not in ids
    assert quirks["tiny"] in ids
    assert len(ids) == 11 - 2


def test_lazyconfig_and_bad_mode(quirky):
    name, _ = quirky
    dicts = instantiate(L(get_sardet_train_dicts)(names=name, filter_mode="original"))
    assert len(dicts) == 9
    with pytest.raises(ValueError, match="filter_mode"):
        get_sardet_train_dicts(name, filter_mode="mmdet")
