"""Backbones, LoRA and the RetinaNet pieces of the original recipe."""
from .convnext import ConvNeXtBackbone, add_convnext_config
from .lora import LoRALinear, inject_lora, lora_state_dict_keys, merge_lora, unmerge_lora
from .box_transform import SARBox2BoxTransform
from .fpn import SARFPN, SARLastLevelP6P7
from .matcher import SARMatcher
from .retinanet import SARRetinaNet
