"""datasets/prepare_sardet100k.py: report and exit code on a good and a damaged copy; subsets."""

import importlib.util
import json
import os
import shutil

import pytest

from sar_lora_dino.data import make_synthetic_sardet
from sar_lora_dino.data.check import check_sardet_root

_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "datasets", "prepare_sardet100k.py")


def _cli():
    spec = importlib.util.spec_from_file_location("prepare_sardet100k", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("chk") / "SARDet_100K")
    make_synthetic_sardet(root, num_train=10, num_val=5, num_test=5, seed=2)
    return root


def test_good_copy_passes(good, capsys):
    assert _cli()([f"--root={good}", "--no-expected-counts", "--workers=1"]) == 0
    out = capsys.readouterr().out
    assert "OK: no problems found." in out
    assert "boxes per class: ship" in out and "image sizes:" in out
    report = check_sardet_root(good, expected=None, progress=False)
    assert report["problems"] == []
    assert report["splits"]["train"]["images"] == 10
    assert sum(report["splits"]["val"]["size_histogram"].values()) == 5


def test_counts_are_compared_with_the_published_ones(good, capsys):
    assert _cli()([f"--root={good}", "--splits", "val", "--workers=1"]) == 1
    assert "published 10492 / 22703" in capsys.readouterr().out


def test_damaged_copy_fails(good, tmp_path, capsys):
    root = str(tmp_path / "damaged")
    shutil.copytree(good, root)
    with open(os.path.join(root, "Annotations", "train.json")) as f:
        names = [im["file_name"] for im in json.load(f)["images"]]
    image_dir = os.path.join(root, "JPEGImages", "train")
    os.remove(os.path.join(image_dir, names[0]))
    open(os.path.join(image_dir, names[1]), "w").close()  # zero bytes
    with open(os.path.join(image_dir, names[2]), "r+b") as f:
        f.truncate(200)  # truncated download
    with open(os.path.join(root, "Annotations", "val.json"), "w") as f:
        f.write("{not json")
    report_file = str(tmp_path / "report.json")
    rc = _cli()([f"--root={root}", "--no-expected-counts", "--workers=2", f"--json={report_file}"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "1 missing image(s)" in out and names[0] in out
    assert "1 empty image(s)" in out and names[1] in out
    assert "1 unreadable image(s)" in out and names[2] in out
    assert "Malformed annotation JSON" in out and "val.json" in out
    with open(report_file) as f:
        assert len(json.load(f)["problems"]) == 4


def test_missing_root_fails(tmp_path, capsys):
    assert _cli()([f"--root={tmp_path / 'none'}"]) == 1
    assert "SARDET100K_ROOT" in capsys.readouterr().out


def test_subset_keeps_the_layout(good, tmp_path):
    out = str(tmp_path / "small")
    assert _cli()([f"--root={good}", "--subset=4", f"--out={out}"]) == 0
    assert sorted(os.listdir(os.path.join(out, "Annotations"))) == ["train.json", "val.json"]
    report = check_sardet_root(out, splits=("train", "val"), expected=None, progress=False)
    assert report["problems"] == []
    assert report["splits"]["train"]["images"] == 4 and report["splits"]["val"]["images"] == 1
    with open(os.path.join(out, "Annotations", "train.json")) as f:
        assert set(json.load(f)) == {"images", "annotations", "categories"}


def test_what_the_loader_refuses_is_a_problem(good, tmp_path):
    root = str(tmp_path / "bad_ids")
    shutil.copytree(good, root)
    json_file = os.path.join(root, "Annotations", "val.json")
    with open(json_file) as f:
        data = json.load(f)
    data["annotations"][0]["category_id"] = 9
    with open(json_file, "w") as f:
        json.dump(data, f)
    report = check_sardet_root(root, splits=("val",), expected=None, progress=False)
    assert len(report["problems"]) == 1
    assert "val.json" in report["problems"][0] and "category_id 9" in report["problems"][0]
