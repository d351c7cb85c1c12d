"""Two CPU processes (gloo) train and evaluate through the command line like one process does."""

import json
import os
import re

import numpy as np
import pytest
import torch
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


def test_a_corrupt_image_on_rank_1_stops_every_rank_naming_the_file(tmp_path):
    from datetime import timedelta

    from engine_helpers import corrupt_on_one_rank_child

    from sar_lora_dino.engine import launch

    prefix = "ddpcorrupt"
    root = make_tiny_root(str(tmp_path / "root"), prefix)
    out = str(tmp_path / "out")
    opts = ["train.max_iter=3", "train.eval_period=0", "train.checkpointer.period=100"]
    # a hang would end at the collective timeout, without the file in rank 0's error
    with pytest.raises(Exception) as failed:
        launch(
            corrupt_on_one_rank_child,
            2,
            args=(root, prefix, out, opts, 1, 0),
            timeout=timedelta(seconds=90),
        )
    with open(os.path.join(out, "log.txt.rank1")) as f:
        bad = re.search(r"Cannot use image '([^']+)'", f.read()).group(1)
    with open(os.path.join(out, "log.txt")) as f:
        log = f.read()
    assert "DataLoadingError: Iteration 1: rank 1 could not load its training batch" in log
    assert f"Cannot use image '{bad}'" in log  # rank 0 names rank 1's file
    assert bad in str(failed.value)
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == "model_0000000.pth"
    state = torch.load(os.path.join(out, "model_0000000.pth"), weights_only=True)
    # rank 0 loaded the batch of iteration 1, but the state resumes before it
    assert state["iteration"] == 0 and state["trainer"]["data_loader"]["step"] == 1
    assert len(state["trainer"]["rng"]) == 2
