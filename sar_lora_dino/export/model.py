"""Build a trained detector from a config and weights, or a run folder, for export."""

import logging
import os
from typing import Optional, Sequence, Tuple

from detectron2.config import instantiate

from ..checkpoint.adapter import is_adapter_file, read_adapter_metadata
from ..checkpoint.checkpointer import SARCheckpointer

__all__ = ["resolve_run", "load_trained_model"]

logger = logging.getLogger(__name__)

RUN_CONFIG = "config.yaml"
RUN_WEIGHTS = "model_best.pth"


def resolve_run(run_dir: str) -> Tuple[str, str]:
    """
    Args:
        run_dir (str): a training output folder.

    Returns:
        tuple[str, str]: its ``config.yaml`` and ``model_best.pth``.
    """
    paths = tuple(os.path.join(run_dir, name) for name in (RUN_CONFIG, RUN_WEIGHTS))
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"--run {run_dir}: expected a training output folder with {RUN_CONFIG} and "
            f"{RUN_WEIGHTS}; missing {missing}"
        )
    return paths


def load_trained_model(
    config_file: Optional[str],
    weights: str,
    overrides: Sequence[str] = (),
    device: str = "cpu",
):
    """
    Build ``cfg.model`` and load ``weights`` with :class:`SARCheckpointer` (any format it reads;
    an adapter loads over ``train.init_checkpoint`` or the base it records).

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
    model = instantiate(cfg.model).to(device).eval()
    SARCheckpointer(model, base_checkpoint=cfg.train.get("init_checkpoint") or None).load(
        weights, checkpointables=[]
    )
    return cfg, model
