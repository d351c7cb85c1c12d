"""A SARDet-100K-shaped root with the real files' quirks trains and evaluates through the CLI."""

import json
import os

from _quirks import inject_sardet_quirks
from engine_helpers import run_train_net

from sar_lora_dino.data import make_synthetic_sardet


def _run_cli(root, out):
    return run_train_net(root, f"train.output_dir={out}", "train.max_iter=2", "train.eval_period=0")


def _quirky_root(path):
    # mixed sizes and .jpg/.png/.bmp single-channel images, as in the release
    root = str(path)
    make_synthetic_sardet(root, num_train=8, num_val=6, num_test=0, sizes=(96, 128), seed=1)
    for split in ("train", "val"):
        # zero-area, border-crossing, crowd, ignored, sub-pixel boxes, a box-less image, and
        # annotation ids starting at 0
        inject_sardet_quirks(root, split, zero_annotation_id=True)
    return root


def test_quirky_root_trains_and_evaluates(tmp_path):
    root = _quirky_root(tmp_path / "SARDet_100K")
    out = str(tmp_path / "run")
    proc = _run_cli(root, out)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # no weights given: said loudly, since the paper's numbers need DINOv3
    assert "RANDOM weights" in log
    # the loader reports what it dropped and clipped, once per split
    assert "clipped" in log and "'ignore' boxes" in log
    with open(os.path.join(out, "inference", "sardet100k_val", "coco_metrics.json")) as f:
        metrics = json.load(f)
    assert set(metrics["bbox"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    assert set(metrics["per_class_AP"]) == {"ship", "aircraft", "car", "tank", "bridge", "harbor"}
    assert os.path.isfile(os.path.join(out, "model_final.pth"))


def test_missing_image_stops_before_training_with_path_and_split(tmp_path):
    root = _quirky_root(tmp_path / "SARDet_100K")
    with open(os.path.join(root, "Annotations", "train.json")) as f:
        victim = json.load(f)["images"][0]["file_name"]
    os.remove(os.path.join(root, "JPEGImages", "train", victim))
    out = str(tmp_path / "run")
    proc = _run_cli(root, out)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert victim in log and "train" in log
    assert not os.path.exists(os.path.join(out, "model_final.pth"))
    assert "Starting training" not in log
