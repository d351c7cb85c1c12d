"""Two CPU processes (gloo) train and evaluate through the command line like one process does."""

import json
import os

import numpy as np
import pytest
from engine_helpers import make_tiny_root, run_train_net, tiny_cfg

from sar_lora_dino.engine import do_eval
from sar_lora_dino.reporting.plots import read_metrics

PREFIX = "launchtest"


def _by_image(predictions):
    out = {}
    for p in predictions:
        out.setdefault(p["image_id"], []).append(p["score"])
    return {k: np.sort(v) for k, v in out.items()}


def test_two_gloo_processes_train_and_evaluate_like_one(tmp_path):
    root = make_tiny_root(str(tmp_path / "root"), PREFIX)
    out2 = str(tmp_path / "two")
    proc = run_train_net(
        root,
        "--num-gpus",
        "2",
        "--dist-url",
        "auto",
        f"train.output_dir={out2}",
        "train.max_iter=4",
        "train.eval_period=0",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Rank 0 of 2" in proc.stdout + proc.stderr
    records = read_metrics(os.path.join(out2, "metrics.json"))
    assert [r["iteration"] for r in records if "total_loss" in r] == [0, 1, 2, 3]
    with open(os.path.join(out2, "inference", "sardet100k_val", "coco_metrics.json")) as f:
        two = json.load(f)
    assert two["world_size"] == 2

    # The same checkpoint evaluated by one process.
    out1 = str(tmp_path / "one")
    checkpoint = os.path.join(out2, "model_final.pth")
    cfg, args = tiny_cfg(out1, PREFIX, [f"train.init_checkpoint={checkpoint}"], eval_only=True)
    do_eval(cfg, args)
    with open(os.path.join(out1, "inference", f"{PREFIX}_val", "coco_metrics.json")) as f:
        one = json.load(f)
    assert one["world_size"] == 1
    for key, value in two["bbox"].items():
        assert value == pytest.approx(one["bbox"][key], abs=1e-6), key
    assert two["per_class_AP"] == pytest.approx(one["per_class_AP"], abs=1e-6)
    with open(two["predictions"]) as f:
        preds_two = _by_image(json.load(f))
    with open(one["predictions"]) as f:
        preds_one = _by_image(json.load(f))
    assert preds_two.keys() == preds_one.keys() and len(preds_one) == 4
    for image_id, scores in preds_one.items():
        np.testing.assert_allclose(preds_two[image_id], scores, atol=1e-5)
