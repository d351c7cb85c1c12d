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
