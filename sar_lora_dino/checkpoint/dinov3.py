"""Read DINOv3 ConvNeXt weights in the official, timm or Hugging Face layout as timm keys."""

import logging
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from .inert_pickle import few_keys, read_checkpoint_file, unwrap_state_dict

__all__ = ["detect_dinov3_layout", "convert_dinov3_state_dict", "load_dinov3_file"]

logger = logging.getLogger(__name__)

_PARAM = r"(weight|bias)"
_BLOCK_PARTS = ("conv_dw", "norm", "mlp.fc1", "mlp.fc2")

# (pattern, replacement) pairs per layout; a key must match one rule exactly.
_RULES: Dict[str, List[Tuple[str, str]]] = {
    "official": [
        (rf"downsample_layers\.0\.([01])\.{_PARAM}", r"stem.\1.\2"),
        (rf"downsample_layers\.([123])\.([01])\.{_PARAM}", r"stages.\1.downsample.\2.\3"),
        (rf"stages\.(\d+)\.(\d+)\.dwconv\.{_PARAM}", r"stages.\1.blocks.\2.conv_dw.\3"),
        (rf"stages\.(\d+)\.(\d+)\.norm\.{_PARAM}", r"stages.\1.blocks.\2.norm.\3"),
        (rf"stages\.(\d+)\.(\d+)\.pwconv([12])\.{_PARAM}", r"stages.\1.blocks.\2.mlp.fc\3.\4"),
        (r"stages\.(\d+)\.(\d+)\.gamma", r"stages.\1.blocks.\2.gamma"),
    ],
    # timm's own names: what is not a ConvNeXt key is caught by _check_convnext_keys
    "timm": [(r"(stem|stages)\..+", r"\g<0>")],
    "hf": [
        (rf"stages\.0\.downsample_layers\.([01])\.{_PARAM}", r"stem.\1.\2"),
        (rf"stages\.([123])\.downsample_layers\.([01])\.{_PARAM}", r"stages.\1.downsample.\2.\3"),
        (
            rf"stages\.(\d+)\.layers\.(\d+)\.depthwise_conv\.{_PARAM}",
            r"stages.\1.blocks.\2.conv_dw.\3",
        ),
        (rf"stages\.(\d+)\.layers\.(\d+)\.layer_norm\.{_PARAM}", r"stages.\1.blocks.\2.norm.\3"),
        (
            rf"stages\.(\d+)\.layers\.(\d+)\.pointwise_conv([12])\.{_PARAM}",
            r"stages.\1.blocks.\2.mlp.fc\3.\4",
        ),
        (r"stages\.(\d+)\.layers\.(\d+)\.gamma", r"stages.\1.blocks.\2.gamma"),
    ],
}

# The final norm is not part of the detection backbone; classifier weights (ImageNet ConvNeXt
# files in the same layouts) are not either. Both are recognised and dropped, nothing else.
_SKIP: Dict[str, str] = {
    "official": rf"(norm|norms\.3)\.{_PARAM}|head\.{_PARAM}",
    "timm": rf"head\.norm\.{_PARAM}|head\.fc\.{_PARAM}",
    "hf": rf"layer_norm\.{_PARAM}",
}

# One key pattern that only its layout has.
_SIGNATURE: Dict[str, str] = {
    "official": r"(downsample_layers\.\d+\.\d+|stages\.\d+\.\d+\.(dwconv|pwconv[12]))\.",
    "timm": r"(stem\.\d+|stages\.\d+\.blocks\.\d+\.(conv_dw|mlp\.fc[12]))\.",
    "hf": r"stages\.\d+\.(downsample_layers|layers\.\d+\.(depthwise_conv|pointwise_conv[12]))\.",
}

_HF_PREFIX = "model."


def _hf_items(state_dict: Mapping[str, Any]) -> List[Tuple[str, Any]]:
    """The items, without the ``model.`` prefix when every key has it (as some HF files do)."""
    items = list(state_dict.items())
    if items and all(k.startswith(_HF_PREFIX) for k, _ in items):
        return [(k[len(_HF_PREFIX) :], v) for k, v in items]
    return items


def detect_dinov3_layout(state_dict: Mapping[str, Any]) -> Optional[str]:
    """
    Returns:
        str or None: the DINOv3 ConvNeXt key layout of ``state_dict``, "official", "timm" or
        "hf" (also with every key prefixed ``model.``); None when it has no layout's keys.
        Keys of more than one layout raise ValueError.
    """
    hf_keys = [k for k, _ in _hf_items(state_dict)]
    found = [
        layout
        for layout, pattern in _SIGNATURE.items()
        if any(re.match(pattern, k) for k in (hf_keys if layout == "hf" else state_dict))
    ]
    if len(found) > 1:
        raise ValueError(f"State dict mixes DINOv3 ConvNeXt key layouts {found}")
    return found[0] if found else None


def _fix_shape(key: str, value: torch.Tensor) -> torch.Tensor:
    # Some exports store the pointwise layers as 1x1 convs and layer scale as (1, C, 1, 1);
    # timm holds them as Linear weights and a (C,) vector.
    if re.search(r"mlp\.fc[12]\.weight$", key) and value.dim() == 4 and value.shape[2:] == (1, 1):
        return value.flatten(1)
    if key.endswith(".gamma") and value.dim() > 1:
        return value.flatten()
    return value


def convert_dinov3_state_dict(
    state_dict: Mapping[str, Any], layout: Optional[str] = None, source: str = "state dict"
) -> Dict[str, torch.Tensor]:
    """
    Remap DINOv3 ConvNeXt weights in the "official", "timm" or "hf" ``layout`` (detected when
    None) to timm's key names (the keys of :class:`sar_lora_dino.modeling.ConvNeXtBackbone`).

    The final norm (official ``norm.*``/``norms.3.*``, timm ``head.norm.*``, HF
    ``layer_norm.*``) and classifier weights are dropped; any other key that does not belong
    to the layout is an error, and so is an incomplete 4-stage ConvNeXt. ``source`` names the
    file in error messages.
    """
    if layout is None:
        layout = detect_dinov3_layout(state_dict)
        if layout is None:
            raise ValueError(
                f"{source}: not a DINOv3 ConvNeXt state dict; expected keys like "
                "'downsample_layers.0.0.weight' (official), 'stem.0.weight' (timm) or "
                "'stages.0.downsample_layers.0.weight' (Hugging Face); "
                f"found {few_keys(state_dict)}"
            )
    items = _hf_items(state_dict) if layout == "hf" else list(state_dict.items())
    rules = [(re.compile(p), r) for p, r in _RULES[layout]]
    skip = re.compile(_SKIP[layout])
    out, skipped, leftover = {}, [], []
    for key, value in items:
        if skip.fullmatch(key):
            skipped.append(key)
            continue
        for pattern, repl in rules:
            if pattern.fullmatch(key):
                new_key = pattern.sub(repl, key)
                out[new_key] = _fix_shape(new_key, value)
                break
        else:
            leftover.append(key)
    if leftover:
        raise ValueError(
            f"{source}: keys that do not belong to a DINOv3 ConvNeXt in the {layout} layout: "
            f"{few_keys(leftover)}"
        )
    _check_convnext_keys(out, source)
    logger.info(
        f"{source}: {len(out)} ConvNeXt tensors read from the {layout} layout; "
        f"dropped final norm/classifier {sorted(skipped)}"
    )
    return out


def _check_convnext_keys(state_dict: Mapping[str, Any], source: str) -> None:
    """Raise unless timm-keyed weights form a complete 4-stage ConvNeXt, nothing more."""
    keys = set(state_dict)
    depths = []
    for i in range(4):
        found = (re.match(rf"stages\.{i}\.blocks\.(\d+)\.", k) for k in keys)
        depths.append(max((int(m.group(1)) for m in found if m), default=-1) + 1)
    wb = ("weight", "bias")
    expected = {f"stem.{j}.{p}" for j in (0, 1) for p in wb}
    for i, depth in enumerate(depths):
        if i > 0:
            expected |= {f"stages.{i}.downsample.{j}.{p}" for j in (0, 1) for p in wb}
        for b in range(depth):
            expected.add(f"stages.{i}.blocks.{b}.gamma")
            expected |= {f"stages.{i}.blocks.{b}.{n}.{p}" for n in _BLOCK_PARTS for p in wb}
    missing = expected - keys
    if missing or 0 in depths:
        empty = [i for i, d in enumerate(depths) if d == 0]
        raise ValueError(
            f"{source}: incomplete ConvNeXt weights; missing {few_keys(missing)}"
            + (f"; no blocks at all in stage(s) {empty}" if empty else "")
        )
    extra = keys - expected
    if extra:
        raise ValueError(f"{source}: unexpected ConvNeXt keys {few_keys(extra)}")


def load_dinov3_file(path: str) -> Dict[str, torch.Tensor]:
    """A DINOv3 ConvNeXt weight file (.pth/.pt/.bin/.safetensors, any released layout) as
    timm-keyed backbone weights (see :func:`convert_dinov3_state_dict`)."""
    state_dict = unwrap_state_dict(read_checkpoint_file(path), source=path)
    return convert_dinov3_state_dict(state_dict, source=path)
