"""The synthetic SAR set: SARDet-100K layout and JSON shape, determinism, atomic writes."""

import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image

import sar_lora_dino.data.synthetic as synthetic
from sar_lora_dino.data import make_synthetic_sardet, register_sardet100k
from sar_lora_dino.reporting.painter import draw_contact_sheet


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            with open(os.path.join(dirpath, name), "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("syn") / "set")
    make_synthetic_sardet(path, num_train=12, num_val=4, num_test=3, seed=1)
    return path


def test_layout_and_json_shape(root):
    assert sorted(os.listdir(os.path.join(root, "Annotations"))) == [
        "test.json",
        "train.json",
        "val.json",
    ]
    names_seen = set()
    for split, n in (("train", 12), ("val", 4), ("test", 3)):
        with open(os.path.join(root, "Annotations", f"{split}.json")) as f:
            data = json.load(f)
        assert set(data) == {"images", "annotations", "categories"}  # no info/licenses
        assert [c["id"] for c in data["categories"]] == list(range(6))
        assert data["categories"][0]["name"] == "ship"
        assert len(data["images"]) == n
        for im in data["images"]:
            assert set(im) == {"id", "file_name", "width", "height"}
            assert "/" not in im["file_name"] and im["file_name"] not in names_seen
            names_seen.add(im["file_name"])
            with Image.open(os.path.join(root, "JPEGImages", split, im["file_name"])) as pil:
                assert pil.mode == "L" and pil.size == (im["width"], im["height"])
            assert im["width"] in (256, 512, 800)
        for a in data["annotations"]:
            assert set(a) == {
                "id",
                "image_id",
                "category_id",
                "bbox",
                "area",
                "iscrowd",
                "ignore",
                "segmentation",
            }
            assert 0 <= a["category_id"] < 6 and a["segmentation"] == []
            x, y, w, h = a["bbox"]
            assert w > 1 and h > 1 and x >= 0 and y >= 0
    assert {os.path.splitext(n)[1] for n in names_seen} == {".jpg", ".png", ".bmp"}


def test_targets_are_brighter_than_clutter(root):
    with open(os.path.join(root, "Annotations", "train.json")) as f:
        data = json.load(f)
    im = data["images"][0]
    pixels = np.asarray(Image.open(os.path.join(root, "JPEGImages", "train", im["file_name"])))
    inside = np.zeros(pixels.shape, bool)
    for a in data["annotations"]:
        if a["image_id"] == im["id"]:
            x, y, w, h = (int(v) for v in a["bbox"])
            inside[y : y + h, x : x + w] = True
    assert inside.any()
    assert np.percentile(pixels[inside], 90) > 2 * np.median(pixels[~inside])


def test_deterministic_from_seed(root, tmp_path):
    again = str(tmp_path / "again")
    make_synthetic_sardet(again, num_train=12, num_val=4, num_test=3, seed=1)
    assert _digest(again) == _digest(root)
    other = str(tmp_path / "other")
    make_synthetic_sardet(other, num_train=12, num_val=4, num_test=3, seed=2)
    assert _digest(other) != _digest(root)


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_write_split", fail)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_sardet(str(tmp_path / "set"), num_train=2, num_val=0, num_test=0)
    assert os.listdir(tmp_path) == []


def test_existing_root_needs_overwrite(root):
    with pytest.raises(FileExistsError, match="overwrite"):
        make_synthetic_sardet(root, num_train=1)


def test_contact_sheet(root, tmp_path):
    (name,) = register_sardet100k(root, prefix="syn_sheet", splits=["train"])
    out = str(tmp_path / "sheet.png")
    sheet = draw_contact_sheet(name, out, num_images=4, cols=2, tile=128)
    assert sheet.shape == (256, 256, 3)
    assert Image.open(out).size == (256, 256)
