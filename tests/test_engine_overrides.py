"""Checked command-line overrides, the training step's options and atomic file writes."""

import os

import pytest
import torch
from detectron2.utils.events import EventStorage
from engine_helpers import REPO, TINY_CONFIG

from sar_lora_dino.engine import ConfigOverrideError, MixedPrecisionTrainer, load_config
from sar_lora_dino.utils import atomic_write


@pytest.fixture(scope="module")
def cfg_loader():
    return lambda *opts: load_config(TINY_CONFIG, list(opts))


def test_valid_overrides_apply(cfg_loader):
    cfg = cfg_loader(
        "train.max_iter=10",
        "optimizer.lr=1",  # an int may set a float
        "train.clip_grad.max_norm=1.0",  # fills a field that is None in the config
        "dataloader.test.dataset.names=sardet100k_test",
        "model.backbone.bottom_up.use_checkpoint=true",
    )
    assert cfg.train.max_iter == 10 and cfg.optimizer.lr == 1
    assert cfg.train.clip_grad.max_norm == 1.0
    assert cfg.dataloader.test.dataset.names == "sardet100k_test"


def test_unknown_key_names_the_key_and_a_suggestion(cfg_loader):
    with pytest.raises(ConfigOverrideError, match=r"'train.max_itr'.*Did you mean 'train.max_iter"):
        cfg_loader("train.max_itr=5")


def test_wrong_value_type_names_what_was_expected(cfg_loader):
    with pytest.raises(ConfigOverrideError, match=r"'train.max_iter' expects an int.*got 'abc'"):
        cfg_loader("train.max_iter=abc")
    with pytest.raises(ConfigOverrideError, match=r"expects a bool"):
        cfg_loader("train.amp.enabled=3")


def test_constructor_arguments_are_checked_against_the_target(cfg_loader):
    cfg = cfg_loader("model.backbone.bottom_up.lora_dropout=0.1")  # set in the config
    assert cfg.model.backbone.bottom_up.lora_dropout == 0.1
    with pytest.raises(ConfigOverrideError, match=r"no argument 'lora_rank'.*lora_r"):
        cfg_loader("model.backbone.bottom_up.lora_rank=8")


def test_cli_exits_with_the_message_before_starting(capsys):
    import importlib.util

    path = os.path.join(REPO, "tools", "lazyconfig_train_net.py")
    spec = importlib.util.spec_from_file_location("lazyconfig_train_net", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit, match="unknown config key 'train.outptu_dir'"):
        tool.cli(["--config-file", TINY_CONFIG, "train.outptu_dir=/tmp/x"])
    with pytest.raises(SystemExit, match="no such config file"):
        tool.cli(["--config-file", "configs/nope.py"])


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 1)

    def forward(self, batch):
        return {"loss": (self.fc(batch) ** 2).mean() * 1e4}


def _toy_trainer(**kwargs):
    torch.manual_seed(0)
    model = _Toy()
    data = [torch.randn(8, 4) for _ in range(3)]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return MixedPrecisionTrainer(model, data, opt, device="cpu", **kwargs)


def test_gradient_clipping_bounds_the_update_and_logs_the_norm():
    trainer = _toy_trainer(clip_grad={"max_norm": 0.5}, amp_enabled=True)  # AMP: fp32 on CPU
    assert not trainer.amp_enabled and trainer.grad_scaler is None
    before = trainer.model.fc.weight.detach().clone()
    with EventStorage(0) as storage:
        trainer.storage = storage
        trainer.run_step()
        assert storage.history("grad_norm").latest() > 0.5
    step = (trainer.model.fc.weight.detach() - before).norm()
    assert step <= 0.1 * 0.5 + 1e-6


def test_bad_amp_dtype_and_clip_settings_are_rejected():
    with pytest.raises(ValueError, match="train.amp.dtype"):
        _toy_trainer(amp_dtype="fp8")
    with pytest.raises(ValueError, match="train.clip_grad"):
        _toy_trainer(clip_grad={"norm": 1})


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = str(tmp_path / "model.pth")
    atomic_write(path, lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail)
    with open(path, "rb") as f:
        assert f.read() == b"old"
    assert os.listdir(tmp_path) == ["model.pth"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # as open() would make it
