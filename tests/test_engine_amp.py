"""The mixed-precision step (autocast, loss scaling, unscale, clip) and non-finite losses."""

import json
import os

import pytest
import torch
from detectron2.engine import HookBase
from engine_helpers import fpn_output_recorder, make_tiny_root, tiny_cfg

from sar_lora_dino.engine import MixedPrecisionTrainer, NonFiniteLossError, do_train

PREFIX = "amptest"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_tiny_root(str(tmp_path_factory.mktemp("amp") / "root"), PREFIX)


def test_bf16_autocast_with_loss_scaling_runs_on_the_cpu_and_resumes(data_root, tmp_path):
    out = str(tmp_path)
    amp = [
        "train.amp.enabled=True",
        "train.amp.dtype=bfloat16",
        "train.amp.grad_scaler=True",
        "train.clip_grad.max_norm=1.0",
        "train.eval_period=0",
    ]
    cfg, args = tiny_cfg(out, PREFIX, [*amp, "train.max_iter=1"])
    dtypes = fpn_output_recorder()
    do_train(cfg, args, extra_hooks=[dtypes])
    assert dtypes.seen == {(torch.bfloat16, "cpu")}
    path = os.path.join(out, "model_final.pth")
    state = torch.load(path, weights_only=True)
    assert state["trainer"]["grad_scaler"]["scale"] == 65536.0  # no overflow, no growth yet
    # a distinctive scale in the file must come back on --resume
    state["trainer"]["grad_scaler"]["scale"] = 1024.0
    torch.save(state, path)
    seen = []

    class _Scale(HookBase):
        def before_train(self):
            seen.append(self.trainer.grad_scaler.get_scale())

    cfg, args = tiny_cfg(out, PREFIX, [*amp, "train.max_iter=2"], resume=True)
    do_train(cfg, args, resume=True, extra_hooks=[_Scale()])
    assert seen == [1024.0]
    with open(os.path.join(out, "metrics.json")) as f:
        records = [json.loads(line) for line in f]
    assert any("grad_norm" in r for r in records) and any("loss_scale" in r for r in records)


class _Param(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))
        self.bad_from = 10**9
        self.calls = 0

    def forward(self, data):
        self.calls += 1
        loss = (self.w**2).sum()
        if self.calls > self.bad_from:
            loss = loss * float("nan")
        return {"loss_a": loss, "loss_b": self.w.sum() * 0}


def test_float16_on_the_cpu_falls_back_to_float32(caplog):
    model = _Param()
    trainer = MixedPrecisionTrainer(
        model,
        [[{}]] * 3,
        torch.optim.SGD(model.parameters(), lr=0.1),
        amp_enabled=True,
        device="cpu",
    )
    assert not trainer.amp_enabled and trainer.grad_scaler is None
    assert "needs CUDA" in caplog.text


def test_persistent_nan_loss_stops_naming_iteration_and_terms():
    model = _Param()
    model.bad_from = 2  # iterations 0, 1 are fine; NaN from iteration 2 on
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = MixedPrecisionTrainer(model, iter([[{}]] * 20), optimizer, max_nonfinite=3)
    with pytest.raises(NonFiniteLossError, match=r"3 iterations in a row.*iteration 4.*loss_a"):
        trainer.train(0, 10)
    assert torch.equal(model.w.detach(), torch.full((2,), 0.8**2))  # NaN steps were skipped
