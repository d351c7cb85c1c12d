"""Our state dict under the original's MMDetection names, written from MMDetection's naming."""

import re

from sar_lora_dino.checkpoint.mmdet import anchor_permutation

_FIXED = {f"backbone.fpn_lateral{s}.": f"neck.lateral_convs.{s - 3}.conv." for s in (3, 4, 5)}
_FIXED.update({f"backbone.fpn_output{s}.": f"neck.fpn_convs.{s - 3}.conv." for s in (3, 4, 5)})
_FIXED.update({"backbone.top_block.p6.": "neck.fpn_convs.3.conv."})
_FIXED.update({"backbone.top_block.p7.": "neck.fpn_convs.4.conv."})
_FIXED.update(
    {"head.cls_score.": "bbox_head.retina_cls.", "head.bbox_pred.": "bbox_head.retina_reg."}
)


def mmdet_names(d2_sd, lora_form="linear"):
    """
    The original's key names for our state dict (head outputs not reordered).

    Args:
        d2_sd (dict): our state dict.
        lora_form (str): "linear" (``lora_A.weight``), "tensor" or "transposed" (in x r).
    """
    mm = {}
    for key, value in d2_sd.items():
        if key.startswith("backbone.bottom_up."):
            timm_key = key[len("backbone.bottom_up.") :]
            layer, _, leaf = timm_key.rpartition(".")
            if f"backbone.bottom_up.{layer}.lora_A" in d2_sd and leaf in ("weight", "bias"):
                timm_key = f"{layer}.base.{leaf}"
            elif leaf in ("lora_A", "lora_B"):
                if lora_form == "linear":
                    timm_key += ".weight"
                elif lora_form == "transposed":
                    value = value.t()
            mm["backbone.backbone." + timm_key] = value
            continue
        m = re.match(r"head\.(cls|bbox)_subnet\.(\d+)\.", key)
        if m:
            branch = "cls" if m.group(1) == "cls" else "reg"
            new = f"bbox_head.{branch}_convs.{int(m.group(2)) // 2}.conv."
            mm[new + key[m.end() :]] = value
            continue
        prefix = next(p for p in _FIXED if key.startswith(p))
        mm[_FIXED[prefix] + key[len(prefix) :]] = value
    return mm


def mmdet_checkpoint(d2_sd, lora_form="linear"):
    """The original's state dict for our weights: its names, its ratio-major head outputs."""
    mm = mmdet_names(d2_sd, lora_form)
    perm_inv = sorted(range(9), key=anchor_permutation().__getitem__)
    for name in ("retina_cls", "retina_reg"):
        for leaf in ("weight", "bias"):
            t = mm[f"bbox_head.{name}.{leaf}"]
            blocks = t.reshape(9, -1, *t.shape[1:])
            mm[f"bbox_head.{name}.{leaf}"] = blocks[perm_inv].reshape(t.shape)
    return mm
