"""Backbones, LoRA and the RetinaNet pieces of the original recipe."""

from .box_transform import TwoSidedClampBox2BoxTransform
from .convnext import ConvNeXtBackbone, add_convnext_config
from .fpn import NoReLULastLevelP6P7, XavierInitFPN
from .lora import (
    LoRALinear,
    inject_lora,
    lora_state_dict_keys,
    merge_lora,
    merged_state_dict,
    unmerge_lora,
)
from .matcher import LowQualityReassignMatcher
from .retinanet import MMDetRetinaNet

# The names before the rename, so that configs saved by earlier runs still load.
SARBox2BoxTransform = TwoSidedClampBox2BoxTransform  # deprecated alias (saved configs)
SARFPN = XavierInitFPN  # deprecated alias (saved configs)
SARLastLevelP6P7 = NoReLULastLevelP6P7  # deprecated alias (saved configs)
SARMatcher = LowQualityReassignMatcher  # deprecated alias (saved configs)
SARRetinaNet = MMDetRetinaNet  # deprecated alias (saved configs)
