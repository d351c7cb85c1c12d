"""Best checkpoint selection, trainable-only checkpoints, strict evaluation loads, provenance."""

import logging
import os

import pytest
import torch
from engine_helpers import build_tiny_model, make_tiny_root, tiny_cfg

from sar_lora_dino.engine import (
    BestCheckpointer,
    CheckpointMismatchError,
    TrainingCheckpointer,
    do_eval,
    do_train,
)
from sar_lora_dino.engine.checkpointing import clean_stale_temps
from sar_lora_dino.utils.io import TEMP_PREFIX

PREFIX = "ckpttest"


class _Saver:
    def __init__(self):
        self.saved = []

    def save(self, name, **kwargs):
        self.saved.append(kwargs["iteration"])


@pytest.mark.parametrize(
    "mode, values, saved",
    [
        ("max", [1.0, 3.0, 2.0, float("nan"), 5.0, 5.0], [0, 1, 4]),
        ("min", [5.0, 3.0, 4.0, float("inf"), 1.0], [0, 1, 4]),
    ],
)
def test_best_checkpoint_follows_the_metric(mode, values, saved, caplog):
    saver = _Saver()
    best = BestCheckpointer(saver, metric="bbox/AP", mode=mode)
    with caplog.at_level(logging.WARNING):
        for it, value in enumerate(values):
            best.update({"bbox/AP": value}, it)
    assert saver.saved == saved
    assert best.best_iter == saved[-1]
    assert "is nan at iteration 3" in caplog.text or "is inf at iteration 3" in caplog.text
    restored = BestCheckpointer(_Saver(), mode=mode)
    restored.load_state_dict(best.state_dict())
    assert not restored.update({"bbox/AP": values[saved[-1]]}, 99)  # not better than the best


def test_best_checkpoint_with_several_datasets_names_the_one_that_selects(caplog):
    flat = {"a_val/bbox/AP": 1.0, "b_val/bbox/AP": 9.0}
    saver = _Saver()
    with caplog.at_level(logging.WARNING):
        assert BestCheckpointer(saver).update(flat, 3, ["a_val", "b_val"])
    assert "'a_val/bbox/AP' (the first) selects model_best.pth" in caplog.text
    chosen = BestCheckpointer(_Saver(), metric="b_val/bbox/AP")
    chosen.update(flat, 3, ["a_val", "b_val"])
    assert chosen.best_metric == 9.0
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert not BestCheckpointer(_Saver(), metric="bbox/AP50x").update(flat, 4)
    assert "'bbox/AP50x' is not among the evaluation results at iteration 4" in caplog.text


def test_pruning_counts_earlier_runs_and_keeps_the_resume_point(tmp_path):
    for it in (1, 3, 5, 7, 9):
        (tmp_path / f"model_{it:07d}.pth").write_bytes(b"x")
    for name in ("model_final.pth", "model_best.pth"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "last_checkpoint").write_text("model_0000001.pth")
    (tmp_path / f"{TEMP_PREFIX}model_0000011.pth.abc").write_bytes(b"half")
    (tmp_path / "inference").mkdir()
    (tmp_path / "inference" / f"{TEMP_PREFIX}coco_metrics.json.x").write_bytes(b"")
    pruned = TrainingCheckpointer(torch.nn.Linear(1, 1), str(tmp_path), max_to_keep=2).prune()
    assert pruned == ["model_0000003.pth", "model_0000005.pth"]
    assert len(clean_stale_temps(str(tmp_path))) == 2
    assert sorted(os.listdir(tmp_path)) == [
        "inference",
        "last_checkpoint",
        "model_0000001.pth",
        "model_0000007.pth",
        "model_0000009.pth",
        "model_best.pth",
        "model_final.pth",
    ]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A backbone file in the timm layout and a trainable-only run that starts from it."""
    tmp = tmp_path_factory.mktemp("base")
    root = make_tiny_root(str(tmp / "root"), PREFIX)
    backbone = build_tiny_model().backbone.bottom_up
    weights = {k: v for k, v in backbone.state_dict().items() if "lora_" not in k}
    dim = weights["stages.3.blocks.0.gamma"].shape[0]
    weights.update({"head.norm.weight": torch.ones(dim), "head.norm.bias": torch.zeros(dim)})
    base = str(tmp / "base.pth")
    torch.save(weights, base)
    out = str(tmp / "run")
    opts = [
        f"train.init_checkpoint={base}",
        "train.allow_random_init=False",
        "train.checkpoint_trainable_only=True",
        "train.max_iter=2",
        "train.eval_period=0",
    ]
    cfg, args = tiny_cfg(out, PREFIX, opts)
    do_train(cfg, args)
    return root, base, out, opts


def test_trainable_only_checkpoints_hold_trainable_tensors_and_the_base(base_run, tmp_path):
    _, base, out, _ = base_run
    final = os.path.join(out, "model_final.pth")
    state = torch.load(final, weights_only=True)
    info = state["trainable_only"]
    assert info["base_weights"]["sha256"] == state["init_weights"]["sha256"]
    assert info["base_weights"]["path"] == os.path.abspath(base)
    assert not any(k in state["model"] for k in info["frozen_keys"])
    assert "backbone.bottom_up.stem.0.weight" in info["frozen_keys"]
    assert any("lora_A" in k for k in state["model"])

    cfg, args = tiny_cfg(str(tmp_path / "eval"), PREFIX, [f"train.init_checkpoint={final}"], True)
    results = do_eval(cfg, args)  # the base is found at its recorded path
    assert "bbox" in results

    moved = str(tmp_path / "moved.pth")
    os.rename(base, moved)
    try:
        with pytest.raises(FileNotFoundError, match=r"holds only the trainable tensors.*sha256"):
            do_eval(cfg, args)
        torch.save({"other": torch.zeros(1)}, base)  # another file under the recorded name
        with pytest.raises(FileNotFoundError, match="different content"):
            do_eval(cfg, args)
    finally:
        os.replace(moved, base)


def test_eval_only_with_a_checkpoint_of_another_config_fails(base_run, tmp_path):
    _, _, out, _ = base_run
    final = os.path.join(out, "model_final.pth")
    opts = [f"train.init_checkpoint={final}", "model.backbone.bottom_up.lora_r=4"]
    cfg, args = tiny_cfg(str(tmp_path), PREFIX, opts, eval_only=True)
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatch.*lora_A.*another config"):
        do_eval(cfg, args)
    assert not os.path.exists(os.path.join(str(tmp_path), "inference"))


def test_training_without_weights_is_an_error_that_names_the_variable(base_run, tmp_path):
    for config_env, extra in [("DINOV3_WEIGHTS", []), ("CONVNEXT_IN1K_WEIGHTS", [])]:
        opts = ["train.init_checkpoint=", "train.allow_random_init=False", *extra]
        opts.append(f"train.weights_env={config_env}")
        cfg, args = tiny_cfg(str(tmp_path), PREFIX, opts)
        with pytest.raises(ValueError, match=rf"Set {config_env}=.*allow_random_init=True"):
            do_train(cfg, args)
    missing = str(tmp_path / "nope.pth")
    cfg, args = tiny_cfg(str(tmp_path), PREFIX, [f"train.init_checkpoint={missing}"])
    with pytest.raises(FileNotFoundError, match=r"train.init_checkpoint=.*nope\.pth.*no such"):
        do_train(cfg, args)
