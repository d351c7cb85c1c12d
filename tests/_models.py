"""The one tiny detector of the tests: the shipped RetinaNet config, shrunk, with overrides."""

import copy
import functools
import os

import torch
from detectron2.config import LazyConfig, instantiate
from omegaconf import OmegaConf

# The shipped LoRA r16 fc1+fc2 config (configs/common/models/retinanet_convnext.py through
# configs/sar_lora_dino/...) with one block per stage, 16-128 channels, FPN and head at 32.
TINY_CONFIG = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "configs", "tiny_lora_r16_fc1fc2.py"
)


@functools.lru_cache(maxsize=None)
def _loaded():
    return LazyConfig.load(TINY_CONFIG)


def tiny_config():
    """
    Returns:
        DictConfig: a fresh copy of the whole tiny config (``model``, ``dataloader``, ...).
    """
    return copy.deepcopy(_loaded())


def tiny_model_config(bottom_up=None, overrides=None, **fields):
    """
    The tiny config's ``model`` node with overrides applied.

    Args:
        bottom_up (dict or None): :class:`ConvNeXtBackbone` arguments, e.g.
            ``{"finetune": "full", "depths": [1, 1, 2, 1]}``; ``dims`` also sets the P6 input.
        overrides (dict or None): dotted keys under ``model`` and their values, e.g.
            ``{"backbone.out_channels": 16, "head.conv_dims": [16, 16]}``.
        fields: :class:`MMDetRetinaNet` arguments, e.g. ``loss_normalizer="ema"``.

    Returns:
        DictConfig: the LazyConfig of the model.
    """
    model = tiny_config().model
    for key, value in (bottom_up or {}).items():
        model.backbone.bottom_up[key] = value
    if bottom_up and "dims" in bottom_up:
        model.backbone.top_block.in_channels = bottom_up["dims"][-1]
    for key, value in (overrides or {}).items():
        OmegaConf.update(model, key, value, merge=False)
    for key, value in fields.items():
        model[key] = value
    return model


def tiny_model(bottom_up=None, overrides=None, seed=0, **fields):
    """
    Build the tiny RetinaNet (seeded); arguments as :func:`tiny_model_config`.

    Args:
        seed (int): torch seed set before the weights are initialised.

    Returns:
        MMDetRetinaNet
    """
    cfg = tiny_model_config(bottom_up, overrides, **fields)
    torch.manual_seed(seed)
    return instantiate(cfg)


def tiny_backbone(seed=0, **kwargs):
    """
    Build only the tiny model's :class:`ConvNeXtBackbone` (seeded).

    Args:
        kwargs: :class:`ConvNeXtBackbone` arguments over the tiny config's.
    """
    cfg = tiny_model_config(bottom_up=kwargs).backbone.bottom_up
    torch.manual_seed(seed)
    return instantiate(cfg)
