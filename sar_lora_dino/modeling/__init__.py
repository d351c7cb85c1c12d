"""Backbones, LoRA and the RetinaNet pieces of the original recipe."""
from .convnext import ConvNeXtBackbone, add_convnext_config
from .lora import LoRALinear, inject_lora, lora_state_dict_keys, merge_lora, unmerge_lora
