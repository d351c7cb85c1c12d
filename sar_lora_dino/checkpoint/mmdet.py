"""Key mapping between the original's MMDetection RetinaNet checkpoints and our model."""

import re
from typing import Dict, List

import torch

from sar_lora_dino.utils.io import atomic_write

from .inert_pickle import read_checkpoint_file, unwrap_state_dict

__all__ = [
    "is_mmdet_state_dict",
    "convert_mmdet_state_dict",
    "anchor_permutation",
    "convert_mmdet_checkpoint",
]

_MMDET_BACKBONE = "backbone.backbone."
_D2_BACKBONE = "backbone.bottom_up."
_MMDET_MARKERS = ("bbox_head.", "neck.lateral_convs.", "neck.fpn_convs.", _MMDET_BACKBONE)

# (MMDetection regex, detectron2 name of the index it matches) for the FPN and RetinaHead convs;
# the original's FPN takes C3-C5 (stride 8 first) and makes P6/P7 with fpn_convs.3/4.
_NECK_HEAD_RULES = (
    (r"neck\.lateral_convs\.(\d+)\.conv\.", lambda i: f"backbone.fpn_lateral{3 + i}."),
    (r"neck\.fpn_convs\.([0-2])\.conv\.", lambda i: f"backbone.fpn_output{3 + i}."),
    (r"neck\.fpn_convs\.(3)\.conv\.", lambda i: "backbone.top_block.p6."),
    (r"neck\.fpn_convs\.(4)\.conv\.", lambda i: "backbone.top_block.p7."),
    (r"bbox_head\.cls_convs\.(\d+)\.conv\.", lambda i: f"head.cls_subnet.{2 * i}."),
    (r"bbox_head\.reg_convs\.(\d+)\.conv\.", lambda i: f"head.bbox_subnet.{2 * i}."),
)
_HEAD_OUTPUTS = {"retina_cls": "head.cls_score", "retina_reg": "head.bbox_pred"}


def is_mmdet_state_dict(state_dict: Dict) -> bool:
    """Whether a state dict has the original's MMDetection RetinaNet key names
    (``backbone.backbone.*``, ``neck.*_convs.*``, ``bbox_head.*``)."""
    return any(k.startswith(_MMDET_MARKERS) for k in state_dict)


def anchor_permutation(num_ratios: int = 3, num_scales: int = 3) -> List[int]:
    """
    Index map from detectron2's anchor order in a cell to MMDetection's.

    MMDetection's ``AnchorGenerator`` (``scale_major=True``) numbers a cell's anchors
    ratio-major (``ratio * num_scales + scale``); detectron2's ``DefaultAnchorGenerator``
    size-major (``size * num_ratios + ratio``). Both list ratios (h/w) and sizes ascending.

    Returns:
        list[int]: ``perm`` such that detectron2 anchor ``d`` is MMDetection anchor ``perm[d]``.
        For a square grid (3 x 3) it is a transpose, hence its own inverse.
    """
    return [(d % num_ratios) * num_scales + d // num_ratios for d in range(num_ratios * num_scales)]


def _reorder_anchors(tensor: torch.Tensor) -> torch.Tensor:
    """Reorder the (anchor, value) blocks of dim 0 of a head output conv's weight or bias."""
    perm = anchor_permutation()  # the original's 3 ratios x 3 scales
    per_anchor = tensor.shape[0] // len(perm)
    if per_anchor * len(perm) != tensor.shape[0]:
        raise ValueError(
            f"head output has {tensor.shape[0]} channels, not a multiple of {len(perm)} anchors"
        )
    blocks = tensor.reshape(len(perm), per_anchor, *tensor.shape[1:])
    return blocks[perm].reshape(tensor.shape).contiguous()


def _orient_lora(name: str, a: torch.Tensor, b: torch.Tensor, base: torch.Tensor):
    """Return (lora_A as r x in, lora_B as out x r); transposes (in x r) / (r x out) forms."""
    out_f, in_f = base.shape
    if a.dim() == 2 and a.shape[1] != in_f and a.shape[0] == in_f:
        a = a.t()
    if b.dim() == 2 and b.shape[0] != out_f and b.shape[1] == out_f:
        b = b.t()
    r = a.shape[0]
    if a.shape != (r, in_f) or b.shape != (out_f, r):
        raise ValueError(
            f"{name}: LoRA shapes {tuple(a.shape)} / {tuple(b.shape)} do not fit a base Linear "
            f"of shape {tuple(base.shape)}; expected lora_A (r x {in_f}) and lora_B ({out_f} x r)"
        )
    return a.contiguous(), b.contiguous()


def convert_mmdet_state_dict(state_dict: Dict) -> Dict[str, torch.Tensor]:
    """
    Map the original's MMDetection RetinaNet state dict to our detectron2 names.

    * backbone ``backbone.backbone.<timm key>`` -> ``backbone.bottom_up.<timm key>``; the
      original's LoRA wrapper keeps the base Linear under ``.base.``: ``mlp.fc1.base.weight``
      -> ``mlp.fc1.weight``. Its ``lora_A``/``lora_B`` may be tensors or ``nn.Linear``
      (``lora_A.weight``); we assume ``lora_A`` is r x in and ``lora_B`` out x r (the
      ``nn.Linear`` layout) and transpose in x r / r x out tensors, told apart by the base
      Linear's shape (a square r == in or r == out is read as already oriented).
    * neck and head by the rules at the top of this file, the head outputs with each cell's
      anchors reordered from ratio-major to size-major (see :func:`anchor_permutation`).

    Keys outside ``backbone.``, ``neck.`` and ``bbox_head.`` are kept unchanged (the
    checkpointer reports them as unexpected); the backbone's timm keys are not checked here.

    Returns:
        dict[str, Tensor]: detectron2 key -> tensor, in the input's order.
    """
    out, lora = {}, {}
    for key, value in state_dict.items():
        if key.startswith(_MMDET_BACKBONE):
            # timm's features_only wrapper flattens "stem.0" / "stages.1" to "stem_0" / "stages_1"
            timm_key = re.sub(r"^(stem|stages)_(\d+)\.", r"\1.\2.", key[len(_MMDET_BACKBONE) :])
            timm_key = timm_key.replace(".base.", ".")
            m = re.fullmatch(r"(.+)\.(lora_[AB])(\.weight)?", timm_key)
            if m:
                lora.setdefault(m.group(1), {})[m.group(2)] = value
                continue
            if "lora" in timm_key:
                raise KeyError(f"{key}: unknown LoRA tensor; expected lora_A / lora_B")
            out[_D2_BACKBONE + timm_key] = value
        elif key.startswith(("neck.", "bbox_head.")):
            new_key, new_value = _map_neck_head(key, value)
            out[new_key] = new_value
        else:
            out[key] = value
    for layer, pair in lora.items():
        base_key = f"{_D2_BACKBONE}{layer}.weight"
        if set(pair) != {"lora_A", "lora_B"} or base_key not in out:
            raise KeyError(
                f"{_MMDET_BACKBONE}{layer}: a LoRA layer needs lora_A, lora_B and its base "
                f"weight; found {sorted(pair)}{'' if base_key in out else ' and no base weight'}"
            )
        a, b = _orient_lora(layer, pair["lora_A"], pair["lora_B"], out[base_key])
        out[f"{_D2_BACKBONE}{layer}.lora_A"] = a
        out[f"{_D2_BACKBONE}{layer}.lora_B"] = b
    return out


def _map_neck_head(key, value):
    """detectron2 (key, tensor) of one neck/head entry; head outputs get their anchors reordered."""
    m = re.fullmatch(r"bbox_head\.(retina_cls|retina_reg)\.(weight|bias)", key)
    if m:
        return f"{_HEAD_OUTPUTS[m.group(1)]}.{m.group(2)}", _reorder_anchors(value)
    for pattern, fmt in _NECK_HEAD_RULES:
        m = re.fullmatch(pattern + r"(weight|bias)", key)
        if m:
            return fmt(int(m.group(1))) + m.group(2), value
    raise KeyError(
        f"{key}: not a key of the original's RetinaNet (FPN without norm, RetinaHead without "
        "norm); cannot map it to detectron2"
    )


def convert_mmdet_checkpoint(src: str, dst: str) -> Dict[str, torch.Tensor]:
    """
    Convert the original's checkpoint file ``src`` (as MMEngine's runner writes it, read
    without MMEngine by :func:`read_checkpoint_file`, or its bare state dict) to a detectron2
    checkpoint ``{"model": ..., "matching_heuristics": False, ...}`` written atomically to
    ``dst``.

    Returns:
        dict[str, Tensor]: the converted state dict.
    """
    state_dict = unwrap_state_dict(read_checkpoint_file(src), src)
    if not is_mmdet_state_dict(state_dict):
        raise ValueError(
            f"{src}: no MMDetection RetinaNet keys (backbone.backbone.*, neck.*, bbox_head.*) "
            "found; is this the original's checkpoint?"
        )
    model = convert_mmdet_state_dict(state_dict)
    data = {"model": model, "__author__": "convert_mmdet_to_d2", "matching_heuristics": False}
    atomic_write(dst, lambda f: torch.save(data, f))
    return model
