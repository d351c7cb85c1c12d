"""The backbone's LoRA in peft's on-disk format, written with safetensors and json only."""

import json
import os
from typing import Dict

import torch
from safetensors.torch import save_file

from ..checkpoint.checkpointer import find_convnext_backbone
from ..modeling.lora import LoRALinear
from ..utils.io import atomic_dir

__all__ = ["peft_state_dict", "peft_adapter_config", "export_peft"]

PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"
# peft wraps the user's model in LoraModel (``base_model``) inside PeftModel, and strips the
# adapter name ("default") from the keys it saves.
PEFT_PREFIX = "base_model.model."


def _lora_layers(model):
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
    return backbone, layers


def peft_state_dict(model) -> Dict[str, torch.Tensor]:
    """
    Args:
        model (nn.Module): a detector whose ConvNeXt backbone carries LoRA.

    Returns:
        dict[str, Tensor]: ``base_model.model.<timm module path>.lora_A.weight`` (r x in) and
        ``...lora_B.weight`` (out x r) for every LoRA layer; the timm paths are the backbone's
        own (``stages.2.blocks.0.mlp.fc1``), as in ``timm.create_model(arch)``.
    """
    _, layers = _lora_layers(model)
    out = {}
    for name, m in layers:
        out[f"{PEFT_PREFIX}{name}.lora_A.weight"] = m.lora_A.detach().cpu().contiguous().clone()
        out[f"{PEFT_PREFIX}{name}.lora_B.weight"] = m.lora_B.detach().cpu().contiguous().clone()
    return out


def peft_adapter_config(model) -> Dict:
    """
    Args:
        model (nn.Module): as for :func:`peft_state_dict`.

    Returns:
        dict: the ``adapter_config.json`` of a peft ``LoraConfig`` with the same adapter.
    """
    _, layers = _lora_layers(model)
    ranks = {m.r for _, m in layers}
    alphas = {float(m.alpha) for _, m in layers}
    dropouts = {float(getattr(m.lora_dropout, "p", 0.0)) for _, m in layers}
    if len(ranks) > 1 or len(alphas) > 1 or len(dropouts) > 1:
        raise ValueError(f"LoRA layers differ in rank/alpha/dropout: {ranks}, {alphas}, {dropouts}")
    return {
        "peft_type": "LORA",
        "task_type": None,
        # Not a Transformers model: the base is timm's, built with timm.create_model(arch).
        "base_model_name_or_path": None,
        "revision": None,
        "r": ranks.pop(),
        "lora_alpha": alphas.pop(),
        "lora_dropout": dropouts.pop(),
        # peft matches a list entry against the end of a module name, as inject_lora does.
        "target_modules": sorted({".".join(n.split(".")[-2:]) for n, _ in layers}),
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
    Write ``directory`` with ``adapter_config.json`` and ``adapter_model.safetensors``, loadable
    by ``peft.PeftModel.from_pretrained(timm_model, directory)`` on the same timm ConvNeXt.

    Args:
        model (nn.Module): as for :func:`peft_state_dict`.
        directory (str): output folder (written atomically).
        overwrite (bool): replace an existing folder.

    Returns:
        str: ``directory``.
    """
    tensors, config = peft_state_dict(model), peft_adapter_config(model)
    _, backbone = find_convnext_backbone(model)
    with atomic_dir(directory, overwrite=overwrite) as tmp:
        save_file(
            tensors,
            os.path.join(tmp, PEFT_WEIGHTS),
            metadata={"format": "pt", "timm_arch": backbone.arch},
        )
        with open(os.path.join(tmp, PEFT_CONFIG), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2, sort_keys=True)
    return directory
