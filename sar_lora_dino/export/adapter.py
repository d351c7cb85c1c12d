"""Export a trained model's adapter after checking that its base really rebuilds it."""

from typing import Any, Dict

import torch
from detectron2.config import instantiate

from ..checkpoint.adapter import save_adapter
from ..checkpoint.checkpointer import MultiFormatCheckpointer, find_convnext_backbone
from .config_io import config_to_yaml

__all__ = ["export_adapter"]


def _check_base_rebuilds(cfg, model, base: str) -> None:
    """Raise unless ``base`` loaded into a fresh model gives ``model``'s frozen backbone."""
    fresh = instantiate(cfg.model)
    MultiFormatCheckpointer(fresh).load(base, checkpointables=[])
    _, trained = find_convnext_backbone(model)
    _, loaded = find_convnext_backbone(fresh)
    ours = dict(loaded.named_parameters())
    differ = [
        n
        for n, p in trained.named_parameters()
        if not p.requires_grad and not torch.equal(p.detach().cpu(), ours[n].detach().cpu())
    ]
    if differ:
        raise ValueError(
            f"The model's frozen backbone differs from train.init_checkpoint={base} in "
            f"{len(differ)} tensors (e.g. {differ[:3]}): an adapter over that base would not "
            "rebuild this model. Give the config the run was trained with (--run DIR)."
        )


def export_adapter(cfg, model, path: str, check_base: bool = True) -> Dict[str, Any]:
    """
    Write the adapter of ``model`` (see :func:`sar_lora_dino.checkpoint.save_adapter`) with
    ``cfg`` and the fingerprint of ``cfg.train.init_checkpoint`` in its metadata.

    Args:
        cfg (DictConfig): the config of the run.
        model (nn.Module): the trained detector.
        path (str): output ``.safetensors``.
        check_base (bool): first verify that the base weights give the model's frozen
            backbone exactly (costs one more model in memory).

    Returns:
        dict: the metadata written.
    """
    base = cfg.train.get("init_checkpoint") or None
    if base and check_base:
        _check_base_rebuilds(cfg, model, base)
    return save_adapter(model, path, config_to_yaml(cfg), base)
