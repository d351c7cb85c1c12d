"""Adapter files: only the tensors training changed, tied by fingerprint to their base weights."""

import json
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..modeling.convnext import ConvNeXtBackbone
from ..modeling.lora import LoRALinear
from ..utils.io import atomic_path
from .fingerprint import RANDOM_INIT, file_fingerprint, same_weights

__all__ = [
    "ADAPTER_FORMAT",
    "adapter_state_dict",
    "save_adapter",
    "is_adapter_file",
    "read_adapter",
    "read_adapter_metadata",
    "load_adapter",
]

logger = logging.getLogger(__name__)

ADAPTER_FORMAT = "sar_lora_dino.adapter"
ADAPTER_VERSION = "1"


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _backbone(model: nn.Module) -> Tuple[str, ConvNeXtBackbone]:
    from .checkpointer import find_convnext_backbone

    return find_convnext_backbone(model)


def _frozen_backbone_keys(model: nn.Module) -> List[str]:
    """State-dict keys the base weights provide: the backbone's frozen parameters."""
    prefix, backbone = _backbone(model)
    return [prefix + n for n, p in backbone.named_parameters() if not p.requires_grad]


def _adapter_keys(model: nn.Module, with_base: bool) -> List[str]:
    keys = list(model.state_dict().keys())
    if with_base:
        return keys
    frozen = set(_frozen_backbone_keys(model))
    return [k for k in keys if k not in frozen]


def _lora_info(backbone: ConvNeXtBackbone) -> Dict[str, Any]:
    layers = [(n, m) for n, m in backbone.named_modules() if isinstance(m, LoRALinear)]
    targets = sorted({".".join(n.split(".")[-2:]) for n, _ in layers})
    return {
        "arch": backbone.arch,
        "finetune": backbone.finetune,
        "trainable_stages": list(backbone.trainable_stages),
        "r": sorted({m.r for _, m in layers}),
        "alpha": sorted({float(m.alpha) for _, m in layers}),
        "targets": targets,
        "layers": [n for n, _ in layers],
    }


def adapter_state_dict(model: nn.Module, with_base: bool = False) -> Dict[str, torch.Tensor]:
    """
    The tensors an adapter holds: every state-dict entry of ``model`` except the backbone's
    frozen parameters (those come from the base weights). Which parameters are frozen is read
    from ``requires_grad``, set by the backbone's fine-tuning mode and trainable stages.

    Args:
        model (nn.Module): a detector with one :class:`ConvNeXtBackbone`.
        with_base (bool): keep the frozen backbone too (a run without base weights).

    Returns:
        dict[str, Tensor]: model key -> CPU tensor (unmerged LoRA, see ``LoRALinear``).
    """
    model = _unwrap(model)
    state = model.state_dict()
    return {k: state[k].detach().cpu().contiguous() for k in _adapter_keys(model, with_base)}


def save_adapter(
    model: nn.Module, path: str, config_yaml: str, base_checkpoint: Optional[str]
) -> Dict[str, Any]:
    """
    Write ``model``'s adapter as safetensors with its description in the metadata: the config
    (YAML), the LoRA rank/alpha/targets and trainable stages, and the base weights' fingerprint
    (:func:`file_fingerprint` of ``base_checkpoint``, or "random" when there was none; then the
    random frozen backbone is stored too, as nothing else could rebuild it).

    Args:
        model (nn.Module): the trained detector.
        path (str): output ``.safetensors`` file (written atomically).
        config_yaml (str): the config the model was built from.
        base_checkpoint (str or None): the weights training started from
            (``train.init_checkpoint``).

    Returns:
        dict: the metadata written (str -> str).
    """
    model = _unwrap(model)
    base = file_fingerprint(base_checkpoint) if base_checkpoint else RANDOM_INIT
    prefix, backbone = _backbone(model)
    tensors = adapter_state_dict(model, with_base=base == RANDOM_INIT)
    # safetensors refuses tensors that share memory
    tensors = {k: v.clone() for k, v in tensors.items()}
    metadata = {
        "format": ADAPTER_FORMAT,
        "format_version": ADAPTER_VERSION,
        "config": config_yaml,
        "lora": json.dumps(_lora_info(backbone)),
        "backbone_prefix": prefix,
        "base": json.dumps(base),
        "includes_base": json.dumps(base == RANDOM_INIT),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return metadata


def _metadata(path: str) -> Optional[Dict[str, str]]:
    try:
        with safe_open(path, framework="pt") as f:
            return f.metadata() or {}
    except Exception:  # not a safetensors file at all
        return None


def is_adapter_file(path: str) -> bool:
    """Whether ``path`` is an adapter written by :func:`save_adapter`."""
    meta = _metadata(path)
    return bool(meta) and meta.get("format") == ADAPTER_FORMAT


def read_adapter_metadata(path: str) -> Dict[str, Any]:
    """
    Args:
        path (str): an adapter file.

    Returns:
        dict: its metadata with ``lora``, ``base`` and ``includes_base`` decoded from JSON
        (``config`` stays YAML text).
    """
    meta = _metadata(path)
    if not meta or meta.get("format") != ADAPTER_FORMAT:
        raise ValueError(f"{path}: not a {ADAPTER_FORMAT} file (no such 'format' in its metadata)")
    if meta.get("format_version") != ADAPTER_VERSION:
        raise ValueError(
            f"{path}: adapter format version {meta.get('format_version')!r}, this code reads "
            f"version {ADAPTER_VERSION}"
        )
    decoded = dict(meta)
    for key in ("lora", "base", "includes_base"):
        decoded[key] = json.loads(meta[key])
    return decoded


def read_adapter(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """
    Args:
        path (str): an adapter file.

    Returns:
        tuple[dict[str, Tensor], dict]: the tensors and :func:`read_adapter_metadata`.
    """
    decoded = read_adapter_metadata(path)
    tensors = {}
    with safe_open(path, framework="pt") as f:
        for key in f.keys():
            tensors[key] = f.get_tensor(key)
    return tensors, decoded


def _structure_problems(backbone: ConvNeXtBackbone, info: Dict[str, Any]) -> List[str]:
    ours = _lora_info(backbone)
    problems = []
    if ours["arch"] != info["arch"]:
        problems.append(f"wrong backbone: adapter {info['arch']!r}, model {ours['arch']!r}")
    if ours["finetune"] != info["finetune"]:
        problems.append(
            f"wrong fine-tuning mode: adapter finetune={info['finetune']!r}, model "
            f"finetune={ours['finetune']!r}"
        )
    if ours["r"] != info["r"]:
        problems.append(f"wrong LoRA rank: adapter r={info['r']}, model r={ours['r']}")
    if ours["alpha"] != info["alpha"]:
        problems.append(f"wrong LoRA alpha: adapter {info['alpha']}, model {ours['alpha']}")
    if set(ours["layers"]) != set(info["layers"]):
        problems.append(
            f"wrong LoRA target set: adapter targets {info['targets']} "
            f"({len(info['layers'])} layers), model targets {ours['targets']} "
            f"({len(ours['layers'])} layers)"
        )
    if ours["trainable_stages"] != info["trainable_stages"]:
        problems.append(
            f"wrong trainable stages: adapter {info['trainable_stages']}, "
            f"model {ours['trainable_stages']}"
        )
    return problems


def _describe(fp) -> str:
    if fp == RANDOM_INIT:
        return "a random backbone (no base weights)"
    return f"{fp['path']} (sha256 {fp['sha256'][:16]}..., {fp['size']} bytes)"


def _resolve_base(meta: Dict[str, Any], base_checkpoint: Optional[str], path: str):
    """The base file to load (None for a random base) after checking its fingerprint."""
    recorded = meta["base"]
    if not base_checkpoint:
        if recorded == RANDOM_INIT:
            return None
        if not os.path.isfile(recorded["path"]):
            raise FileNotFoundError(
                f"{path} needs its base weights {_describe(recorded)}, which are no longer "
                "there; pass them as train.init_checkpoint=PATH (the base the adapter was "
                "trained on)"
            )
        base_checkpoint = recorded["path"]
    given = file_fingerprint(base_checkpoint) if base_checkpoint else RANDOM_INIT
    if not same_weights(given, recorded):
        raise ValueError(
            f"wrong base for {path}: it was trained on {_describe(recorded)}, but the base "
            f"given is {_describe(given)}; pass the base it was trained on as "
            "train.init_checkpoint"
        )
    return base_checkpoint


def load_adapter(
    model: nn.Module, path: str, base_checkpoint: Optional[str] = None
) -> Dict[str, Any]:
    """
    Rebuild a trained model from its base weights and an adapter: check that the adapter fits
    the model (backbone, LoRA rank/alpha/targets, trainable stages, tensor names and shapes) and
    that the base is the one it was trained on (fingerprint), then load the base with
    :class:`MultiFormatCheckpointer` and the adapter over it. Nothing is loaded when a check fails.

    Args:
        model (nn.Module): built from the adapter's config (``read_adapter(path)[1]["config"]``)
            or an equivalent one.
        path (str): the adapter file.
        base_checkpoint (str or None): the base weights (any format the checkpointer reads).
            Empty/None: the base file recorded in the adapter, if it still exists.

    Returns:
        dict: the adapter's metadata (see :func:`read_adapter`).

    Raises:
        ValueError: naming what does not fit (wrong base, rank, targets, ...).
    """
    from .checkpointer import MultiFormatCheckpointer

    model = _unwrap(model)
    tensors, meta = read_adapter(path)
    _, backbone = _backbone(model)
    problems = _structure_problems(backbone, meta["lora"])
    if problems:
        raise ValueError(
            f"{path} does not fit this model: " + "; ".join(problems) + ". Build the model "
            "from the adapter's own config (stored in its metadata)."
        )
    expected = dict(model.state_dict())
    wanted = set(_adapter_keys(model, with_base=meta["includes_base"]))
    missing, extra = sorted(wanted - tensors.keys()), sorted(tensors.keys() - wanted)
    shapes = [
        f"{k}: adapter {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(wanted & tensors.keys())
        if tensors[k].shape != expected[k].shape
    ]
    if missing or extra or shapes:
        raise ValueError(
            f"{path} does not fit this model: missing {missing[:5]} ({len(missing)}), "
            f"unexpected {extra[:5]} ({len(extra)}), shape mismatches {shapes[:5]}"
        )
    base = None if meta["includes_base"] else _resolve_base(meta, base_checkpoint, path)
    if meta["includes_base"] and base_checkpoint:
        raise ValueError(
            f"wrong base for {path}: it was trained on a random backbone (carried inside the "
            f"adapter), but the base {base_checkpoint} was given; leave train.init_checkpoint empty"
        )
    if base is not None:
        if is_adapter_file(base):
            raise ValueError(f"{base}: the base of an adapter cannot be an adapter itself")
        MultiFormatCheckpointer(model).load(base, checkpointables=[])
    model.load_state_dict(tensors, strict=False)
    logger.info(
        f"Loaded adapter {path} ({len(tensors)} tensors) over "
        f"{'its own random backbone' if base is None else base}"
    )
    return meta
