"""Adapter files: only the tensors training changed, tied by fingerprint to their base weights."""

import json
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ..modeling.lora import LoRALinear
from ..utils.io import atomic_path
from .checkpointer import MultiFormatCheckpointer, find_convnext_backbone, state_dict_mismatch
from .fingerprint import RANDOM_INIT, file_fingerprint, same_weights

__all__ = [
    "save_adapter",
    "is_adapter_file",
    "read_adapter",
    "read_adapter_metadata",
    "load_adapter",
    "lora_info",
]

logger = logging.getLogger(__name__)

ADAPTER_FORMAT = "sar_lora_dino.adapter"
ADAPTER_VERSION = "1"

# (key of lora_info, what it is) that an adapter and the model it loads into must share
_SHARED = (
    ("arch", "backbone"),
    ("finetune", "fine-tuning mode"),
    ("r", "LoRA rank"),
    ("alpha", "LoRA alpha"),
    ("trainable_stages", "trainable stages"),
)


def _adapter_keys(model: nn.Module, with_base: bool) -> List[str]:
    """Every state-dict key of ``model`` except, unless ``with_base``, the frozen backbone's."""
    prefix, backbone = find_convnext_backbone(model)
    frozen = {prefix + n for n, p in backbone.named_parameters() if not p.requires_grad}
    return [k for k in model.state_dict() if with_base or k not in frozen]


def lora_info(backbone) -> Dict[str, Any]:
    """The backbone's ``arch``, ``finetune``, ``trainable_stages``, sorted distinct LoRA ``r``
    and ``alpha``, ``targets`` (as ``lora_targets`` names them) and the LoRA ``layers``."""
    layers = [(n, m) for n, m in backbone.named_modules() if isinstance(m, LoRALinear)]
    return {
        "arch": backbone.arch,
        "finetune": backbone.finetune,
        "trainable_stages": list(backbone.trainable_stages),
        "r": sorted({m.r for _, m in layers}),
        "alpha": sorted({float(m.alpha) for _, m in layers}),
        "targets": sorted({".".join(n.split(".")[-2:]) for n, _ in layers}),
        "layers": [n for n, _ in layers],
    }


def save_adapter(
    model: nn.Module, path: str, config_yaml: str, base_checkpoint: Optional[str]
) -> Dict[str, Any]:
    """
    Write as safetensors every state-dict entry of ``model`` but the backbone's frozen
    parameters (read from ``requires_grad``; LoRA unmerged), described in the metadata: the
    config, :func:`lora_info` and the base weights' :func:`file_fingerprint`. Without a base
    ("random") the frozen backbone is stored too, as nothing else could rebuild it.

    Args:
        model (nn.Module): the trained detector.
        path (str): output ``.safetensors`` file (written atomically).
        config_yaml (str): the config the model was built from.
        base_checkpoint (str or None): the weights training started from
            (``train.init_checkpoint``).

    Returns:
        dict[str, str]: the metadata written.
    """
    base = file_fingerprint(base_checkpoint) if base_checkpoint else RANDOM_INIT
    prefix, backbone = find_convnext_backbone(model)
    state = model.state_dict()
    # clone: safetensors refuses tensors that share memory
    tensors = {
        k: state[k].detach().cpu().contiguous().clone()
        for k in _adapter_keys(model, with_base=base == RANDOM_INIT)
    }
    metadata = {
        "format": ADAPTER_FORMAT,
        "format_version": ADAPTER_VERSION,
        "config": config_yaml,
        "lora": json.dumps(lora_info(backbone)),
        "backbone_prefix": prefix,
        "base": json.dumps(base),
        "includes_base": json.dumps(base == RANDOM_INIT),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return metadata


def _metadata(path: str) -> Dict[str, str]:
    try:
        with safe_open(path, framework="pt") as f:
            return f.metadata() or {}
    except Exception:  # not a safetensors file at all
        return {}


def is_adapter_file(path: str) -> bool:
    """Whether ``path`` is an adapter written by :func:`save_adapter`."""
    return _metadata(path).get("format") == ADAPTER_FORMAT


def read_adapter_metadata(path: str) -> Dict[str, Any]:
    """The metadata of the adapter file ``path``, with ``lora``, ``base`` and ``includes_base``
    decoded from JSON (``config`` stays YAML text)."""
    meta = _metadata(path)
    if meta.get("format") != ADAPTER_FORMAT:
        raise ValueError(f"{path}: not a {ADAPTER_FORMAT} file (no such 'format' in its metadata)")
    if meta.get("format_version") != ADAPTER_VERSION:
        raise ValueError(
            f"{path}: adapter format version {meta.get('format_version')!r}, this code reads "
            f"version {ADAPTER_VERSION}"
        )
    return {**meta, **{k: json.loads(meta[k]) for k in ("lora", "base", "includes_base")}}


def read_adapter(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """The tensors of the adapter file ``path`` and its :func:`read_adapter_metadata`."""
    meta = read_adapter_metadata(path)
    return load_file(path), meta


def _describe(fp) -> str:
    return f"{fp['path']} (sha256 {fp['sha256'][:16]}..., {fp['size']} bytes)"


def _resolve_base(recorded: Dict[str, Any], base_checkpoint: Optional[str], path: str) -> str:
    """The base file to load (by default the recorded one), checked against its fingerprint."""
    if not base_checkpoint:
        if not os.path.isfile(recorded["path"]):
            raise FileNotFoundError(
                f"{path} needs its base weights {_describe(recorded)}, which are no longer "
                "there; pass them as train.init_checkpoint=PATH (the base the adapter was "
                "trained on)"
            )
        base_checkpoint = recorded["path"]
    given = file_fingerprint(base_checkpoint)
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
        base_checkpoint (str or None): the base weights (any format the checkpointer reads);
            when empty, the base file recorded in the adapter, if it still exists.

    Returns:
        dict: the adapter's :func:`read_adapter_metadata`.
    """
    tensors, meta = read_adapter(path)
    ours, info = lora_info(find_convnext_backbone(model)[1]), meta["lora"]
    problems = [
        f"wrong {what}: adapter {k}={info[k]!r}, model {k}={ours[k]!r}"
        for k, what in _SHARED
        if ours[k] != info[k]
    ]
    if set(ours["layers"]) != set(info["layers"]):
        problems.append(
            f"wrong LoRA target set: adapter targets {info['targets']} "
            f"({len(info['layers'])} layers), model targets {ours['targets']} "
            f"({len(ours['layers'])} layers)"
        )
    wanted = set(_adapter_keys(model, with_base=meta["includes_base"]))
    shapes = {k: v.shape for k, v in model.state_dict().items() if k in wanted}
    problems += state_dict_mismatch(tensors, shapes)
    if problems:
        raise ValueError(
            f"{path} does not fit this model: {'; '.join(problems)}. Build the model from the "
            "adapter's own config (stored in its metadata)."
        )
    base = None
    if meta["includes_base"] and base_checkpoint:
        raise ValueError(
            f"wrong base for {path}: it was trained on a random backbone (carried inside the "
            f"adapter), but the base {base_checkpoint} was given; leave train.init_checkpoint empty"
        )
    if not meta["includes_base"]:
        base = _resolve_base(meta["base"], base_checkpoint, path)
        if is_adapter_file(base):
            raise ValueError(f"{base}: the base of an adapter cannot be an adapter itself")
        MultiFormatCheckpointer(model).load(base, checkpointables=[])
    model.load_state_dict(tensors, strict=False)
    logger.info(
        f"Loaded adapter {path} ({len(tensors)} tensors) over "
        f"{'its own random backbone' if base is None else base}"
    )
    return meta
