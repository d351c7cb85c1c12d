"""Backbones, LoRA and the RetinaNet pieces of the original recipe."""

# SAR*: the names before the rename (deprecated), so that configs saved by earlier runs still load
from .box_transform import SARBox2BoxTransform, TwoSidedClampBox2BoxTransform
from .convnext import ConvNeXtBackbone, add_convnext_config
from .fpn import SARFPN, NoReLULastLevelP6P7, SARLastLevelP6P7, XavierInitFPN
from .lora import (
    LoRALinear,
    inject_lora,
    lora_state_dict_keys,
    merge_lora,
    merged_state_dict,
    unmerge_lora,
)
from .matcher import LowQualityReassignMatcher, SARMatcher
from .retinanet import MMDetRetinaNet, SARRetinaNet
