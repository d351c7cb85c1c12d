"""Bad input to training and evaluation: an error naming what is wrong, nothing half-written."""

import glob
import json
import os
import re

import pytest
import torch
from detectron2.engine import HookBase
from engine_helpers import REPO, TINY_CONFIG, make_tiny_root, tiny_cfg

from sar_lora_dino.engine import do_eval, do_train, launch

PREFIX = "badtest"


@pytest.fixture()
def data_root(tmp_path):
    return make_tiny_root(str(tmp_path / "root"), PREFIX + tmp_path.name[-12:].replace("-", "_"))


def _prefix(tmp_path):
    return PREFIX + tmp_path.name[-12:].replace("-", "_")


def test_corrupt_image_mid_epoch_saves_the_state_then_names_the_file(data_root, tmp_path):
    out = str(tmp_path / "out")
    images = glob.glob(os.path.join(data_root, "JPEGImages", "train", "*"))

    class _Corrupt(HookBase):
        def after_step(self):
            if self.trainer.iter == 1:
                for path in images:  # still there, not empty, but not an image any more
                    with open(path, "wb") as f:
                        f.write(b"not an image")

    cfg, args = tiny_cfg(out, _prefix(tmp_path), ["train.eval_period=0"])
    with pytest.raises(RuntimeError, match=r"Cannot use image '.*JPEGImages/train/.*'"):
        do_train(cfg, args, extra_hooks=[_Corrupt()])
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == "model_0000001.pth"
    state = torch.load(os.path.join(out, "model_0000001.pth"), weights_only=True)
    assert state["iteration"] == 1 and state["trainer"]["data_loader"]["step"] == 2


def test_an_empty_split_fails_before_the_first_iteration(data_root, tmp_path):
    val_json = os.path.join(data_root, "Annotations", "val.json")
    with open(val_json) as f:
        data = json.load(f)
    data["images"], data["annotations"] = [], []
    with open(val_json, "w") as f:
        json.dump(data, f)
    out = str(tmp_path / "out")
    cfg, args = tiny_cfg(out, _prefix(tmp_path))
    with pytest.raises(ValueError, match=r"dataset '.*_val' has no images"):
        do_train(cfg, args)
    assert not glob.glob(os.path.join(out, "*.pth"))


def test_an_unregistered_split_fails_before_the_first_iteration(data_root, tmp_path):
    cfg, args = tiny_cfg(str(tmp_path / "out"), _prefix(tmp_path))
    cfg.dataloader.test.dataset.names = "no_such_split"
    with pytest.raises(KeyError, match="'no_such_split' is not a registered dataset"):
        do_train(cfg, args)


def test_output_folder_that_cannot_be_created(data_root, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match=r"train.output_dir=.*a_file/out.*cannot create"):
        tiny_cfg(str(blocker / "out"), _prefix(tmp_path))


def test_no_detection_is_reported_as_such_not_as_nan(data_root, tmp_path):
    prefix = _prefix(tmp_path)
    out = str(tmp_path / "train")
    cfg, args = tiny_cfg(out, prefix, ["train.max_iter=1", "train.eval_period=0"])
    do_train(cfg, args)
    final = os.path.join(out, "model_final.pth")
    opts = [f"train.init_checkpoint={final}", "model.test_score_thresh=1.1"]
    cfg, args = tiny_cfg(str(tmp_path / "eval"), prefix, opts, eval_only=True)
    do_eval(cfg, args)
    metrics = os.path.join(
        str(tmp_path / "eval"), "inference", f"{prefix}_val", "coco_metrics.json"
    )
    with open(metrics) as f:
        record = json.load(f)
    assert record["note"] == "0 detections above the threshold (model.test_score_thresh=1.1)"
    assert record["bbox"]["AP"] is None and record["init_weights"] == "random"


def test_more_processes_than_the_machine_has(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with pytest.raises(ValueError, match=r"--num-gpus 3: no CUDA here.*has 2"):
        launch(lambda: None, 3)


def _cli():
    import importlib.util

    path = os.path.join(REPO, "tools", "lazyconfig_train_net.py")
    spec = importlib.util.spec_from_file_location("lazyconfig_train_net", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.cli


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("empty", r"train.init_checkpoint is empty.*Set DINOV3_WEIGHTS=.*allow_random_init=True"),
        ("missing", r"train.init_checkpoint='.*nope.pth': no such file"),
        ("text", r"train.init_checkpoint='.*weights.pth' is not usable as .*Expected a torch"),
        ("truncated", r"train.init_checkpoint='.*weights.pth' is not usable as .*zip archive"),
    ],
)
def test_unusable_init_weights_end_in_one_line_naming_the_key(
    data_root, tmp_path, capsys, kind, expected
):
    weights = tmp_path / ("nope.pth" if kind == "missing" else "weights.pth")
    if kind == "text":
        weights.write_text("these are not weights\n")
    elif kind == "truncated":
        torch.save({"stem.0.weight": torch.zeros(64, 3, 4, 4)}, str(weights))
        weights.write_bytes(weights.read_bytes()[:3000])
    out = tmp_path / "out"
    opts = [
        f"train.output_dir={out}",
        f"dataloader.train.dataset.names={_prefix(tmp_path)}_train",
        f"dataloader.test.dataset.names={_prefix(tmp_path)}_val",
        "train.allow_random_init=False",
        "train.init_checkpoint=" + ("" if kind == "empty" else str(weights)),
    ]
    with pytest.raises(SystemExit) as stopped:
        _cli()(["--config-file", TINY_CONFIG, *opts])
    message = stopped.value.code
    assert isinstance(message, str) and "\n" not in message  # Python prints it, exit status 1
    assert re.match(r"error: " + expected, message), message
    assert message.endswith(f"(traceback in {out / 'log.txt'})")
    console = capsys.readouterr()
    assert not re.search(r"Error: train\.init_checkpoint", console.out + console.err)  # no trace
    assert "Traceback" in (out / "log.txt").read_text()
    assert not glob.glob(str(out / "*.pth"))
