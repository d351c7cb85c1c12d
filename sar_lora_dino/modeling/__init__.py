"""Backbones, LoRA and the RetinaNet pieces of the original recipe."""

from .box_transform import SARBox2BoxTransform
from .convnext import ConvNeXtBackbone, add_convnext_config
from .fpn import SARFPN, SARLastLevelP6P7
from .lora import (
    LoRALinear,
    inject_lora,
    lora_state_dict_keys,
    merge_lora,
    merged_state_dict,
    unmerge_lora,
)
from .matcher import SARMatcher
from .retinanet import SARRetinaNet
