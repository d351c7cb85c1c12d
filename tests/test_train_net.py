"""Training, resume, evaluation and the metrics files of tools/lazyconfig_train_net.py's engine."""

import glob
import json
import os

import pytest
import torch
from detectron2.engine import HookBase
from engine_helpers import make_tiny_root, tiny_cfg

from sar_lora_dino.engine import count_parameters, do_eval, do_train
from sar_lora_dino.reporting.plots import read_metrics

PREFIX = "enginetest"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_tiny_root(str(tmp_path_factory.mktemp("tinysar") / "root"), PREFIX)


@pytest.fixture(scope="module")
def full_run(data_root, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("full"))
    cfg, args = tiny_cfg(out, PREFIX)
    results = do_train(cfg, args)
    return out, results


def _val_dir(out):
    return os.path.join(out, "inference", f"{PREFIX}_val")


def test_training_writes_checkpoints_metrics_and_best(full_run):
    out, results = full_run
    for name in ("model_final.pth", "model_best.pth", "metrics.json", "config.yaml", "log.txt"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert glob.glob(os.path.join(out, "events.out.tfevents.*"))
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == "model_final.pth"  # model_best must not become the resume point
    assert not glob.glob(os.path.join(out, "**", "*.tmp"), recursive=True)
    records = read_metrics(os.path.join(out, "metrics.json"))
    evals = [r["iteration"] for r in records if "bbox/AP" in r]
    assert evals == [2, 6]  # every eval_period (3) and at the end
    best = torch.load(os.path.join(out, "model_best.pth"), weights_only=False)
    assert set(best) == {"model", "iteration", "best_metric", "init_weights"}
    assert best["init_weights"] == "random"
    assert "bbox" in results and "AP" in results["bbox"]


def test_metrics_json_contents(full_run):
    out, results = full_run
    with open(os.path.join(_val_dir(out), "coco_metrics.json")) as f:
        record = json.load(f)
    assert record["dataset"] == f"{PREFIX}_val" and record["split"] == "val"
    assert set(record["bbox"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
    classes = ["ship", "aircraft", "car", "tank", "bridge", "harbor"]
    assert list(record["per_class_AP"]) == classes
    for key, value in record["bbox"].items():
        expected = results["bbox"][key]
        assert value is None if expected != expected else value == pytest.approx(expected)
    assert record["setting"] == "tiny_lora_r16_fc1fc2" and record["seed"] == 0
    assert record["iteration"] == 5 and record["world_size"] == 1  # model_final's iteration
    assert record["init_weights"] == "random"
    assert record["checkpoint"] == os.path.join(out, "model_final.pth")
    assert record["checkpoint_iteration"] == 5
    assert record["checkpoint_fingerprint"]["size"] == os.path.getsize(record["checkpoint"])
    lines = [json.loads(x) for x in open(os.path.join(out, "metrics.json"))]
    assert all(r["init_weights"] == "random" for r in lines)
    evals = [r for r in lines if "bbox/AP" in r]
    assert [(r["checkpoint"], r["checkpoint_iteration"]) for r in evals] == [
        (os.path.join(out, "model_0000002.pth"), 2),
        (os.path.join(out, "model_final.pth"), 5),
    ]
    assert 0 < record["trainable_params"] < record["total_params"]
    assert os.path.isfile(record["predictions"])


def test_eval_only_reproduces_final_training_ap(full_run, tmp_path):
    out_full, _ = full_run
    checkpoint = os.path.join(out_full, "model_final.pth")
    cfg, args = tiny_cfg(str(tmp_path), PREFIX, [f"train.init_checkpoint={checkpoint}"], True)
    results = do_eval(cfg, args)
    logged = [r for r in read_metrics(f"{out_full}/metrics.json") if "bbox/AP" in r][-1]
    for key in ("AP", "AP50", "AP75"):
        assert results["bbox"][key] == pytest.approx(logged[f"bbox/{key}"], abs=1e-9)
    with open(os.path.join(_val_dir(out_full), "coco_instances_results.json")) as f:
        trained = json.load(f)
    with open(os.path.join(_val_dir(str(tmp_path)), "coco_instances_results.json")) as f:
        evaluated = json.load(f)
    assert len(trained) > 0 and trained == evaluated
    with open(os.path.join(_val_dir(str(tmp_path)), "coco_metrics.json")) as f:
        record = json.load(f)
    assert record["checkpoint"] == checkpoint and record["iteration"] == 5


def test_eval_only_needs_a_checkpoint(data_root, tmp_path):
    cfg, args = tiny_cfg(str(tmp_path), PREFIX, eval_only=True)
    with pytest.raises(ValueError, match="train.init_checkpoint"):
        do_eval(cfg, args)


def test_trainable_parameters_are_counted_through_ddp_wrappers(tmp_path):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1
    )
    try:
        wrapped = DistributedDataParallel(model)
        assert isinstance(wrapped, DistributedDataParallel)
        assert count_parameters(wrapped) == (4 + 10, 12 + 4 + 10)
    finally:
        dist.destroy_process_group()


def test_pictures_of_a_run(full_run, tmp_path):
    import cv2

    from sar_lora_dino.reporting.painter import paint_predictions
    from sar_lora_dino.reporting.plots import plot_training_curves

    out, _ = full_run
    metrics = str(tmp_path / "metrics.json")
    with open(os.path.join(out, "metrics.json")) as src, open(metrics, "w") as dst:
        dst.write(src.read() + '{"iteration": 7, "total_lo')  # a line cut by a killed run
    assert [r["iteration"] for r in read_metrics(metrics)][-1] == 6
    curves = plot_training_curves(metrics, str(tmp_path / "curves.png"))
    assert cv2.imread(curves).shape[2] == 3
    painted = paint_predictions(
        os.path.join(_val_dir(out), "coco_instances_results.json"),
        f"{PREFIX}_val",
        str(tmp_path / "pred.png"),
        num_images=4,
        score_thresh=0.0,
        cols=2,
        tile=100,
    )
    assert cv2.imread(painted).shape == (200, 200, 3)


def test_sigterm_saves_the_state_and_resume_continues_after_it(data_root, tmp_path):
    import signal

    from sar_lora_dino.engine import TrainingStopped

    class _SendSigterm(HookBase):
        def before_step(self):
            if self.trainer.iter == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    out = str(tmp_path)
    cfg, args = tiny_cfg(out, PREFIX, ["train.eval_period=0"])
    with pytest.raises(TrainingStopped) as stopped:
        do_train(cfg, args, extra_hooks=[_SendSigterm()])
    assert stopped.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == "model_0000003.pth"  # iteration 3 finished and was kept
    cfg, args = tiny_cfg(out, PREFIX, ["train.eval_period=0"], resume=True)
    started = []

    class _Start(HookBase):
        def before_train(self):
            started.append(self.trainer.iter)

    do_train(cfg, args, resume=True, extra_hooks=[_Start()])
    assert started == [4]
