"""A trained detector from a config and weights, or a run folder, for export and inference."""

import logging
import os
from typing import Optional, Sequence, Tuple

from detectron2.config import instantiate

from ..checkpoint.adapter import is_adapter_file, read_adapter_metadata
from ..checkpoint.checkpointer import MultiFormatCheckpointer

__all__ = ["build_trained_model", "find_run_files", "load_trained_model"]

logger = logging.getLogger(__name__)

_RUN_WEIGHTS = ("model_best.pth", "model_final.pth")


def find_run_files(run_dir: str) -> Tuple[str, str]:
    """
    Args:
        run_dir (str): a training output folder.

    Returns:
        tuple[str, str]: its ``config.yaml`` and its weights: ``model_best.pth``, else
        ``model_final.pth``, else the file named in ``last_checkpoint``.
    """
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
    Build ``cfg.model`` in eval mode and load ``weights`` with :class:`MultiFormatCheckpointer` (any
    format it reads; an adapter loads over ``train.init_checkpoint`` or the base it records).

    Args:
        cfg (DictConfig): the run's config.
        weights (str): checkpoint or adapter file; one that lacks tensors of the model is refused.
        device (str): where to build the model.

    Returns:
        nn.Module
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
    config_file: Optional[str],
    weights: str,
    overrides: Sequence[str] = (),
    device: str = "cpu",
):
    """
    Load a config (or the one an adapter file stores) and build the trained model with
    :func:`build_trained_model`.

    Args:
        config_file (str or None): LazyConfig (.py or .yaml). None: the config stored in the
            adapter ``weights``.
        weights (str): checkpoint or adapter file.
        overrides (list[str]): checked ``key=value`` overrides (as the training tool's).
        device (str): where to build the model.

    Returns:
        tuple[DictConfig, nn.Module]: the config and the model in eval mode.
    """
    from ..engine import apply_overrides, load_config
    from .config_io import config_from_yaml

    if not weights or not os.path.isfile(weights):
        raise FileNotFoundError(f"--weights: no such file {weights!r}")
    if config_file:
        cfg = load_config(config_file, overrides)
    elif is_adapter_file(weights):
        cfg = apply_overrides(config_from_yaml(read_adapter_metadata(weights)["config"]), overrides)
    else:
        raise ValueError("--config-file is needed unless --weights is an adapter (or use --run)")
    return cfg, build_trained_model(cfg, weights, device)
