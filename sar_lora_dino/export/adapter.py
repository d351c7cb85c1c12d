"""The trained tensors alone: our adapter file (tied to its base weights) and peft's format."""

import json
import os
from typing import Any, Dict

import torch
from detectron2.config import instantiate
from safetensors.torch import save_file

from ..checkpoint.adapter import lora_info, save_adapter
from ..checkpoint.checkpointer import MultiFormatCheckpointer, find_convnext_backbone
from ..modeling.lora import LoRALinear
from ..utils.io import atomic_dir
from .model import config_to_yaml

__all__ = ["export_adapter", "export_peft"]

# peft wraps the user's model in LoraModel (``base_model``) inside PeftModel, and strips the
# adapter name ("default") from the keys it saves.
PEFT_PREFIX = "base_model.model."


def _check_base_rebuilds(cfg, model, base: str) -> None:
    """Raise unless ``base`` loaded into a fresh model gives ``model``'s frozen backbone."""
    fresh = instantiate(cfg.model)
    MultiFormatCheckpointer(fresh).load(base, checkpointables=[])
    _, trained = find_convnext_backbone(model)
    ours = dict(find_convnext_backbone(fresh)[1].named_parameters())
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


def export_adapter(cfg, model, path: str) -> Dict[str, Any]:
    """
    Write the adapter of ``model`` to ``path`` (see :func:`sar_lora_dino.checkpoint.save_adapter`)
    with the run's config ``cfg`` and the fingerprint of ``cfg.train.init_checkpoint`` in its
    metadata, which it returns, once the base weights are checked to give the model's frozen
    backbone exactly (one more model in memory).
    """
    base = cfg.train.get("init_checkpoint") or None
    if base:
        _check_base_rebuilds(cfg, model, base)
    return save_adapter(model, path, config_to_yaml(cfg), base)


def _peft_config(backbone, layers) -> Dict[str, Any]:
    """The ``adapter_config.json`` of a peft ``LoraConfig`` with the same adapter."""
    info = lora_info(backbone)
    dropouts = {float(getattr(m.lora_dropout, "p", 0.0)) for _, m in layers}
    if len(info["r"]) > 1 or len(info["alpha"]) > 1 or len(dropouts) > 1:
        raise ValueError(
            f"LoRA layers differ in rank/alpha/dropout: {info['r']}, {info['alpha']}, {dropouts}"
        )
    return {
        "peft_type": "LORA",
        "task_type": None,
        # Not a Transformers model: the base is timm's, built with timm.create_model(arch).
        "base_model_name_or_path": None,
        "revision": None,
        "r": info["r"][0],
        "lora_alpha": info["alpha"][0],
        "lora_dropout": dropouts.pop(),
        # peft matches a list entry against the end of a module name, as inject_lora does.
        "target_modules": info["targets"],
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "modules_to_save": None,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "use_rslora": False,
        "use_dora": False,
    }


def export_peft(model, directory: str, overwrite: bool = False) -> str:
    """
    Write the backbone's LoRA in peft's format: ``directory`` with ``adapter_config.json`` and
    ``adapter_model.safetensors`` (``base_model.model.<timm module path>.lora_A.weight``, r x in,
    and ``...lora_B.weight``, out x r), loadable by
    ``peft.PeftModel.from_pretrained(timm.create_model(arch), directory)``.

    ``model``'s ConvNeXt backbone must carry LoRA and train nothing else. The folder is
    written atomically; ``overwrite`` replaces an existing one. Returns ``directory``.
    """
    _, backbone = find_convnext_backbone(model)
    layers = [(n, m) for n, m in backbone.named_modules() if isinstance(m, LoRALinear)]
    if not layers:
        raise ValueError(
            f"The backbone has no LoRA layers (finetune={backbone.finetune!r}); there is no "
            "adapter to write in peft's format"
        )
    lora = {id(p) for _, m in layers for p in m.lora_parameters()}
    others = [n for n, p in backbone.named_parameters() if p.requires_grad and id(p) not in lora]
    if others:
        raise ValueError(
            f"peft's LoRA format holds only lora_A/lora_B, but this backbone also trains "
            f"{len(others)} other tensors (trainable_stages={list(backbone.trainable_stages)}, "
            f"e.g. {others[:3]}); export --adapter or --merged instead"
        )
    tensors = {
        f"{PEFT_PREFIX}{name}.{part}.weight": getattr(m, part).detach().cpu().contiguous().clone()
        for name, m in layers
        for part in ("lora_A", "lora_B")
    }
    config = _peft_config(backbone, layers)
    with atomic_dir(directory, overwrite=overwrite) as tmp:
        weights = os.path.join(tmp, "adapter_model.safetensors")
        save_file(tensors, weights, metadata={"format": "pt", "timm_arch": backbone.arch})
        with open(os.path.join(tmp, "adapter_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2, sort_keys=True)
    return directory
