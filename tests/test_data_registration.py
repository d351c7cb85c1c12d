"""SARDet-100K registration on a synthetic root carrying the real release's quirks."""

import json
import logging
import os
import shutil
import uuid

import pytest
import torch
from _quirks import inject_sardet_quirks
from detectron2.data import DatasetCatalog, MetadataCatalog

import sar_lora_dino  # noqa: F401  (registers the default splits)
from sar_lora_dino.data import (
    ScaledImageDatasetMapper,
    get_sardet100k_root,
    load_sardet_json,
    make_synthetic_sardet,
    register_sardet100k,
)


@pytest.fixture(scope="module")
def quirky(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("reg") / "SARDet_100K")
    make_synthetic_sardet(root, num_train=8, num_val=8, num_test=0, seed=3, empty_fraction=0.0)
    quirks = inject_sardet_quirks(root, "val", zero_annotation_id=True)
    prefix = "reg_" + uuid.uuid4().hex[:8]
    names = register_sardet100k(root, prefix=prefix, splits=("train", "val"))
    return root, quirks, names


def _json(root, split):
    with open(os.path.join(root, "Annotations", f"{split}.json")) as f:
        return json.load(f)


def test_default_splits_registered_with_metadata():
    for split in ("train", "val", "test"):
        name = f"sardet100k_{split}"
        assert name in DatasetCatalog.list()
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == ["ship", "aircraft", "car", "tank", "bridge", "harbor"]
        assert len(meta.thing_colors) == 6
        assert meta.evaluator_type == "coco"
        assert meta.json_file.endswith(os.path.join("Annotations", f"{split}.json"))
        assert meta.thing_dataset_id_to_contiguous_id == {i: i for i in range(6)}
    # idempotent: registering again neither raises nor reads anything
    assert register_sardet100k() == ["sardet100k_train", "sardet100k_val", "sardet100k_test"]


def test_root_from_environment(monkeypatch):
    monkeypatch.setenv("SARDET100K_ROOT", "/data/sar")
    assert get_sardet100k_root() == "/data/sar"
    monkeypatch.delenv("SARDET100K_ROOT")
    monkeypatch.setenv("DETECTRON2_DATASETS", "/d2")
    assert get_sardet100k_root() == os.path.join("/d2", "SARDet_100K")
    monkeypatch.delenv("DETECTRON2_DATASETS")
    assert get_sardet100k_root() == os.path.join("datasets", "SARDet_100K")


def test_records_follow_the_json(quirky, caplog):
    root, quirks, (_, val) = quirky
    raw = _json(root, "val")
    assert "info" not in raw and "licenses" not in raw
    with caplog.at_level(logging.INFO, logger="sar_lora_dino.data.sardet"):
        dicts = DatasetCatalog.get(val)
        DatasetCatalog.get(val)
    # counts are logged once per split, never silently
    logged = [r.getMessage() for r in caplog.records if "clipped" in r.getMessage()]
    assert len(logged) == 1 and "1 boxes with no area" in logged[0] and "clipped 1" in logged[0]

    assert len(dicts) == len(raw["images"])  # box-less images kept for evaluation
    by_id = {d["image_id"]: d for d in dicts}
    for d in dicts:
        assert os.path.dirname(d["file_name"]) == os.path.join(root, "JPEGImages", "val")
        assert os.path.isfile(d["file_name"])
        for a in d["annotations"]:
            x, y, w, h = a["bbox"]
            assert w > 0 and h > 0 and x >= 0 and y >= 0
            assert x + w <= d["width"] and y + h <= d["height"]  # clipped
            assert 0 <= a["category_id"] < 6
    raw_count = {im["id"]: 0 for im in raw["images"]}
    for a in raw["annotations"]:
        raw_count[a["image_id"]] += 1
    assert {i: d["num_json_annotations"] for i, d in by_id.items()} == raw_count
    assert by_id[quirks["no_box"]]["num_json_annotations"] == 0
    assert by_id[quirks["no_box"]]["annotations"] == []
    assert by_id[quirks["all_ignored"]]["num_json_annotations"] > 0
    assert by_id[quirks["all_ignored"]]["annotations"] == []
    assert len(by_id[quirks["zero_area"]]["annotations"]) == raw_count[quirks["zero_area"]] - 1
    assert [a["iscrowd"] for a in by_id[quirks["crowd"]]["annotations"]].count(1) == 1


@pytest.mark.parametrize("ext", ["jpg", "png", "bmp"])
def test_single_channel_images_become_rgb(quirky, ext):
    _, _, (train, _) = quirky
    dicts = [d for d in DatasetCatalog.get(train) if d["file_name"].endswith("." + ext)]
    assert dicts, f"the seeded synthetic root must hold a .{ext} image (seed 3 does)"
    out = ScaledImageDatasetMapper(is_train=True, augmentations=[], image_format="RGB")(dicts[0])
    image = out["image"]
    assert image.shape == (3, dicts[0]["height"], dicts[0]["width"])
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert len(out["instances"]) == len(dicts[0]["annotations"])


def test_missing_root_names_the_env_var(tmp_path):
    (name,) = register_sardet100k(str(tmp_path / "nowhere"), prefix="reg_absent", splits=["val"])
    with pytest.raises(FileNotFoundError, match="SARDET100K_ROOT") as e:
        DatasetCatalog.get(name)
    assert "Annotations/{train,val,test}.json" in str(e.value)


def test_missing_image_fails_before_training(quirky, tmp_path):
    root = str(tmp_path / "copy")
    shutil.copytree(quirky[0], root)
    lost = _json(root, "train")["images"][2]["file_name"]
    os.remove(os.path.join(root, "JPEGImages", "train", lost))
    with pytest.raises(FileNotFoundError) as e:
        load_sardet_json(
            os.path.join(root, "Annotations", "train.json"),
            os.path.join(root, "JPEGImages", "train"),
            "reg_copy_train",
        )
    assert os.path.join(root, "JPEGImages", "train", lost) in str(e.value)
    assert "reg_copy_train" in str(e.value)


def test_malformed_json_names_the_file(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages" / "val").mkdir(parents=True)
    bad = tmp_path / "Annotations" / "val.json"
    bad.write_text('{"images": [')
    with pytest.raises(ValueError, match=str(bad)):
        load_sardet_json(str(bad), str(tmp_path / "JPEGImages" / "val"))


def test_category_ids_are_checked(tmp_path):
    (tmp_path / "JPEGImages" / "val").mkdir(parents=True)
    bad = tmp_path / "val.json"
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(["ship", "aircraft"])]
    bad.write_text(json.dumps({"images": [], "annotations": [], "categories": cats}))
    with pytest.raises(ValueError, match="0-based"):
        load_sardet_json(str(bad), str(tmp_path / "JPEGImages" / "val"))


def test_registering_another_root_under_a_used_prefix_fails(tmp_path):
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    for root in (first, second):
        make_synthetic_sardet(root, num_train=0, num_val=1, num_test=0, sizes=(64,), seed=0)
    assert register_sardet100k(first, prefix="reg_twice", splits=["val"]) == ["reg_twice_val"]
    assert register_sardet100k(first, prefix="reg_twice", splits=["val"]) == ["reg_twice_val"]
    with pytest.raises(ValueError, match=r"'reg_twice_val' is already registered with root .*a'"):
        register_sardet100k(second, prefix="reg_twice", splits=["val"])


def test_default_root_is_resolved_at_first_load(tmp_path, monkeypatch):
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    make_synthetic_sardet(first, num_train=0, num_val=2, num_test=0, sizes=(64,), seed=0)
    make_synthetic_sardet(second, num_train=0, num_val=3, num_test=0, sizes=(64,), seed=0)
    monkeypatch.setenv("SARDET100K_ROOT", str(tmp_path / "unset_at_import"))
    (name,) = register_sardet100k(prefix="reg_lazy", splits=["val"])  # as at import time
    monkeypatch.setenv("SARDET100K_ROOT", first)  # set after import
    assert len(DatasetCatalog.get(name)) == 2
    assert MetadataCatalog.get(name).json_file == os.path.join(first, "Annotations", "val.json")
    monkeypatch.setenv("SARDET100K_ROOT", second)
    with pytest.raises(ValueError, match=r"first loaded from .*a'.*now .*b'"):
        DatasetCatalog.get(name)


def test_negative_width_box_is_dropped_and_counted(tmp_path, caplog):
    root = str(tmp_path / "neg")
    make_synthetic_sardet(root, num_train=0, num_val=1, num_test=0, sizes=(64,), seed=0)
    json_file = os.path.join(root, "Annotations", "val.json")
    with open(json_file) as f:
        data = json.load(f)
    image = data["images"][0]["id"]
    data["annotations"] = [
        {"id": 1, "image_id": image, "category_id": 0, "bbox": [30, 5, -10, 8], "area": 80},
        {"id": 2, "image_id": image, "category_id": 1, "bbox": [1, 1, 10, 10], "area": 100},
    ]
    with open(json_file, "w") as f:
        json.dump(data, f)
    with caplog.at_level(logging.INFO):
        (record,) = load_sardet_json(json_file, os.path.join(root, "JPEGImages", "val"), None)
    assert [a["category_id"] for a in record["annotations"]] == [1]
    assert record["num_json_annotations"] == 2
    assert "1 boxes with no area inside the image" in caplog.text
