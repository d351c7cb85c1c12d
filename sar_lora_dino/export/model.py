"""A trained detector and its config, from a config and weights, an adapter or a run folder."""

import os
import tempfile
from typing import Optional, Sequence, Tuple

from detectron2.config import LazyConfig, instantiate

from ..checkpoint.adapter import is_adapter_file, read_adapter_metadata
from ..checkpoint.checkpointer import MultiFormatCheckpointer

__all__ = [
    "build_trained_model",
    "config_to_yaml",
    "find_run_files",
    "load_trained_model",
]

_RUN_WEIGHTS = ("model_best.pth", "model_final.pth")


def config_to_yaml(cfg) -> str:
    """The LazyConfig ``cfg`` as YAML text that ``LazyConfig.load`` reads back from a file."""
    with tempfile.TemporaryDirectory(prefix="sar_cfg.") as tmp:
        path = os.path.join(tmp, "config.yaml")
        LazyConfig.save(cfg, path)
        if os.path.exists(path + ".pkl") or not os.path.isfile(path):
            raise ValueError(
                "The config holds objects YAML cannot represent (LazyConfig.save fell back to "
                "pickle); keep configs to plain values and LazyCall nodes"
            )
        with open(path, encoding="utf-8") as f:
            return f.read()


def find_run_files(run_dir: str) -> Tuple[str, str]:
    """The ``config.yaml`` of the training output folder ``run_dir`` and its weights:
    ``model_best.pth``, else ``model_final.pth``, else the file named in ``last_checkpoint``."""
    config = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(config):
        raise FileNotFoundError(f"--run {run_dir}: no config.yaml; is it a training output folder?")
    candidates = [os.path.join(run_dir, name) for name in _RUN_WEIGHTS]
    last = os.path.join(run_dir, "last_checkpoint")
    if os.path.isfile(last):
        with open(last) as f:
            candidates.append(os.path.join(run_dir, f.read().strip()))
    for path in candidates:
        if os.path.isfile(path):
            return config, path
    raise FileNotFoundError(
        f"--run {run_dir}: no weights (looked for {', '.join(_RUN_WEIGHTS)} and last_checkpoint)"
    )


class _RecordingCheckpointer(MultiFormatCheckpointer):
    """MultiFormatCheckpointer that keeps what did not match, so partial weights can be refused."""

    incompatible = None

    def _load_model(self, checkpoint):
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible


def build_trained_model(cfg, weights: str, device: str = "cpu"):
    """
    Build ``cfg.model`` in eval mode on ``device`` and load ``weights`` with
    :class:`MultiFormatCheckpointer` (any format it reads; an adapter loads over
    ``train.init_checkpoint`` or the base it records). Weights that lack tensors of the model
    are refused.
    """
    if not weights or not os.path.isfile(weights):
        raise FileNotFoundError(f"--weights: no such file {weights!r}")
    model = instantiate(cfg.model).to(device).eval()
    checkpointer = _RecordingCheckpointer(
        model, base_checkpoint=cfg.train.get("init_checkpoint") or None
    )
    checkpointer.load(weights, checkpointables=[])
    missing = list(getattr(checkpointer.incompatible, "missing_keys", None) or [])
    if missing:
        raise ValueError(
            f"{weights} does not hold a trained model for this config: {len(missing)} "
            f"tensor(s) missing, e.g. {sorted(missing)[:5]}. Pass the run's own config "
            "(--run DIR, or its config.yaml) with its weights."
        )
    return model


def load_trained_model(
    config_file: Optional[str], weights: str, overrides: Sequence[str] = (), device: str = "cpu"
):
    """
    :func:`build_trained_model` with the config of ``config_file`` (.py or .yaml) or, when it
    is None, the one the adapter ``weights`` stores; ``overrides`` (``key=value``) are checked
    as the training tool checks them.

    Returns:
        tuple[DictConfig, nn.Module]: the config and the model in eval mode.
    """
    from ..engine import apply_overrides, load_config

    if not weights or not os.path.isfile(weights):
        raise FileNotFoundError(f"--weights: no such file {weights!r}")
    if config_file:
        cfg = load_config(config_file, overrides)
    elif is_adapter_file(weights):
        with tempfile.TemporaryDirectory(prefix="sar_cfg.") as tmp:
            path = os.path.join(tmp, "config.yaml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(read_adapter_metadata(weights)["config"])
            cfg = apply_overrides(LazyConfig.load(path), overrides)
    else:
        raise ValueError("--config-file is needed unless --weights is an adapter (or use --run)")
    return cfg, build_trained_model(cfg, weights, device)
