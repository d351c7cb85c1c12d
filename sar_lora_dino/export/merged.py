"""A LoRA model folded into a plain detectron2 checkpoint and a config without LoRA modules."""

import copy
import os
from typing import Tuple

import torch
from detectron2.config import instantiate
from omegaconf import OmegaConf

from ..checkpoint.checkpointer import find_convnext_backbone
from ..modeling.lora import merged_state_dict
from ..utils.io import atomic_write
from .model import config_to_yaml

__all__ = ["merged_config", "export_merged"]


def merged_config(cfg, model):
    """A copy of ``cfg``, the config of ``model``, whose backbone is built without LoRA
    (``finetune="frozen"``, trainable stages kept), so that it loads :func:`merged_state_dict`."""
    prefix, backbone = find_convnext_backbone(model)
    node_path = prefix.rstrip(".")
    out = copy.deepcopy(cfg)
    node = OmegaConf.select(out.model, node_path)  # "" selects out.model itself
    if node is None or "finetune" not in node:
        raise ValueError(
            f"cfg.model.{node_path} should be the ConvNeXtBackbone node (with a 'finetune' "
            "field) of the model, but is not"
        )
    if backbone.finetune == "lora":
        node.finetune = "frozen"
    return out


def export_merged(cfg, model, path: str) -> Tuple[str, torch.nn.Module]:
    """
    Write ``path`` (a detectron2 checkpoint ``{"model": ...}`` with every LoRA update of
    ``model``, merged or not, folded into its base weight) and ``<path without .pth>.yaml``
    (:func:`merged_config` of ``cfg``, its ``train.init_checkpoint`` set to ``path``). The pair
    is checked by loading it strictly.

    Returns:
        tuple[str, nn.Module]: the config path and the plain model (eval mode, on the CPU).
    """
    state = {k: v.detach().cpu() for k, v in merged_state_dict(model).items()}
    plain_cfg = merged_config(cfg, model)
    plain_cfg.train.init_checkpoint = os.path.abspath(path)
    plain = instantiate(plain_cfg.model).eval()
    plain.load_state_dict(state, strict=True)
    data = {
        "model": state,
        "__author__": "sar_lora_dino (LoRA merged)",
        "matching_heuristics": False,
    }
    config_text = config_to_yaml(plain_cfg)  # fails before anything is written
    atomic_write(path, lambda f: torch.save(data, f))
    config_path = os.path.splitext(path)[0] + ".yaml"
    atomic_write(config_path, lambda f: f.write(config_text), mode="w")
    return config_path, plain
