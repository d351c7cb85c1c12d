"""ConvNeXt (timm) as a detectron2 backbone, with LoRA / frozen / full fine-tuning modes."""

import inspect
from typing import Dict, Optional, Sequence

import timm
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import nn
from torch.utils.checkpoint import checkpoint

from .lean_lora import make_lean_lora_mlps
from .lora import LoRALinear, inject_lora

__all__ = ["ConvNeXtBackbone", "FINETUNE_MODES"]

FINETUNE_MODES = ("frozen", "lora", "full")
# constructor arguments a yacs config does not set (every other one is MODEL.CONVNEXT.<NAME>)
_LAZYCONFIG_ONLY = ("depths", "dims", "lean_lora_mlp", "checkpoint_stages")


class _ConvInputGradOnly(torch.autograd.Function):
    """conv2d whose backward returns only the input gradient, so the input is not saved."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(weight)
        ctx.conf = (x.shape, x.dtype, stride, padding, dilation, groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        (weight,) = ctx.saved_tensors
        shape, dtype, stride, padding, dilation, groups = ctx.conf
        grad_in = torch.nn.grad.conv2d_input(
            shape, weight.to(grad_out.dtype), grad_out, stride, padding, dilation, groups
        )
        return grad_in.to(dtype), None, None, None, None, None, None


class _LeanConv2d(nn.Conv2d):
    """
    nn.Conv2d that, while its parameters are frozen, keeps only its weight for backward.

    A stock convolution saves its input for the weight gradient even when the weight does not
    require grad; in LoRA mode that would keep every frozen depthwise/downsample conv input alive.
    The choice is made per call from ``requires_grad``, so unfreezing later stays correct.
    An nn.Conv2d becomes one by ``conv.__class__ = _LeanConv2d`` (only forward changes).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frozen = not any(p.requires_grad for p in (self.weight, self.bias) if p is not None)
        zero_padded = self.padding_mode == "zeros" and not isinstance(self.padding, str)
        if frozen and zero_padded and torch.is_grad_enabled() and x.requires_grad:
            return _ConvInputGradOnly.apply(
                x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
            )
        return super().forward(x)


@BACKBONE_REGISTRY.register()
class ConvNeXtBackbone(Backbone):
    """
    A timm ConvNeXt feature extractor (stem + 4 stages; no final norm, no classifier) that
    outputs the stage features ``res2``..``res5`` (strides 4/8/16/32).

    Parameter names are timm's (``stem.0.weight``, ``stages.2.blocks.5.mlp.fc1.weight``, ...),
    so inside detectron2's FPN they read ``backbone.bottom_up.<timm key>``.

    Fine-tuning modes:

    * ``"frozen"``: the whole backbone is frozen (linear probe of the FPN and head).
    * ``"lora"``: LoRA adapters in ``lora_targets``; only ``lora_A``/``lora_B`` train.
    * ``"full"``: every backbone parameter trains; no LoRA.

    ``trainable_stages`` (0-3) unfreezes whole stages in "frozen"/"lora" mode (stage i with its
    downsampling layer; stage 0's downsampling layer is the stem), except the base weight and
    bias of LoRA-wrapped layers, which stay frozen. Freezing is decided from module types and
    stage indices and never touches modules outside the backbone.
    """

    @configurable
    def __init__(
        self,
        arch: str = "convnext_small",
        out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        drop_path_rate: float = 0.0,
        use_checkpoint: bool = False,
        finetune: str = "lora",
        lora_r: int = 16,
        lora_alpha: float = 32.0,
        lora_dropout: float = 0.0,
        lora_targets: Sequence[str] = ("mlp.fc1", "mlp.fc2"),
        trainable_stages: Sequence[int] = (),
        depths: Optional[Sequence[int]] = None,
        dims: Optional[Sequence[int]] = None,
        lean_lora_mlp: bool = False,
        checkpoint_stages: Sequence[int] = (),
    ):
        """
        Args:
            arch (str): timm model name, e.g. "convnext_small". Built with pretrained=False;
                load weights with :class:`sar_lora_dino.checkpoint.MultiFormatCheckpointer`.
            out_features (list[str]): subset of "res2".."res5" to return.
            drop_path_rate (float): stochastic depth rate of the timm model.
            use_checkpoint (bool): activation checkpoints in every stage (as
                ``checkpoint_stages=[0, 1, 2, 3]``); not timm's own, which can be switched to
                reentrant checkpoints (``TIMM_REENTRANT_CKPT``) that give frozen-input LoRA
                blocks no gradient.
            finetune, trainable_stages: see the class docstring.
            lora_r, lora_alpha, lora_dropout: the adapters' r, alpha and dropout
                (:class:`LoRALinear`).
            lora_targets (list[str]): qualified-name suffixes of the Linear layers to wrap.
            depths, dims (list[int] or None): override the blocks and channels per stage.
            lean_lora_mlp (bool): LoRA MLPs keep only their input for backward and recompute
                fc1 + GELU (:class:`~sar_lora_dino.modeling.lean_lora.LeanLoRAMlp`); same
                gradients, less memory, a little more time.
            checkpoint_stages (list[int]): stages whose blocks run under non-reentrant
                activation checkpoints in training (recomputed in backward).
        """
        super().__init__()
        if finetune not in FINETUNE_MODES:
            raise ValueError(
                f"ConvNeXtBackbone: finetune must be one of {FINETUNE_MODES}, got {finetune!r}"
            )
        trainable_stages = tuple(trainable_stages)
        bad = [s for s in trainable_stages if not isinstance(s, int) or not 0 <= s <= 3]
        if bad:
            raise ValueError(f"ConvNeXtBackbone: trainable_stages must be ints in 0..3, got {bad}")
        if finetune == "full" and trainable_stages:
            raise ValueError(
                "ConvNeXtBackbone: trainable_stages only applies to finetune='frozen' or 'lora'; "
                "with finetune='full' every stage already trains"
            )
        overrides = {k: tuple(v) for k, v in (("depths", depths), ("dims", dims)) if v is not None}
        model = timm.create_model(
            arch, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate, **overrides
        )
        if len(model.stages) != 4:
            raise ValueError(f"ConvNeXtBackbone: {arch} has {len(model.stages)} stages, need 4")
        # Keep only the feature extractor; the final norm (head.norm / norm_pre) and the
        # classifier belong to the classification head.
        self.stem = model.stem
        self.stages = model.stages

        names = [f"res{i + 2}" for i in range(4)]
        out_features = list(out_features)
        unknown = [f for f in out_features if f not in names]
        if not out_features or unknown:
            raise ValueError(
                f"ConvNeXtBackbone: out_features must be a non-empty subset of {names}, "
                f"got {out_features}"
            )
        info = {name: model.feature_info[i] for i, name in enumerate(names)}
        self._out_features = out_features
        self._out_feature_channels = {f: info[f]["num_chs"] for f in out_features}
        self._out_feature_strides = {f: info[f]["reduction"] for f in out_features}
        self._last_stage = max(names.index(f) for f in out_features)

        self.arch = arch
        self.finetune = finetune
        self.trainable_stages = trainable_stages
        if finetune == "lora":
            inject_lora(self.stages, lora_targets, r=lora_r, alpha=lora_alpha, dropout=lora_dropout)
        for m in self.modules():
            if type(m) is nn.Conv2d:
                m.__class__ = _LeanConv2d
        self._apply_freezing()
        if lean_lora_mlp and not make_lean_lora_mlps(self.stages):
            raise ValueError("ConvNeXtBackbone: lean_lora_mlp needs LoRA on mlp.fc2")
        self.checkpoint_stages = tuple(range(4)) if use_checkpoint else tuple(checkpoint_stages)
        if any(s not in range(4) for s in self.checkpoint_stages):
            raise ValueError(
                f"ConvNeXtBackbone: checkpoint_stages must be in 0..3, got {checkpoint_stages}"
            )

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        if input_shape.channels != 3:
            raise ValueError(
                f"ConvNeXtBackbone expects 3 input channels, got {input_shape.channels}"
            )
        return {key.lower(): value for key, value in cfg.MODEL.CONVNEXT.items()}

    def _apply_freezing(self) -> None:
        # LayerNorm keeps no running statistics, so freezing a norm is only requires_grad.
        self.requires_grad_(self.finetune == "full")
        for idx in self.trainable_stages:  # none with "full"
            self.stages[idx].requires_grad_(True)
            if idx == 0:
                self.stem.requires_grad_(True)
        for m in self.modules():  # none with "full" or "frozen"
            if isinstance(m, LoRALinear):
                for p in m.base_parameters():
                    p.requires_grad_(False)
                for p in m.lora_parameters():
                    p.requires_grad_(True)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Returns the requested ``res*`` features of images ``x`` (N, 3, H, W); spatial size
        H // stride (floor), e.g. 200x249 -> res2 50x62, res5 6x7.
        """
        if x.dim() != 4:
            raise ValueError(f"ConvNeXtBackbone takes (N, C, H, W) input, got {tuple(x.shape)}")
        outputs = {}
        x = self.stem(x)
        for i in range(self._last_stage + 1):
            stage = self.stages[i]
            if i in self.checkpoint_stages and torch.is_grad_enabled() and self.training:
                # non-reentrant: blocks get gradients even when x needs none (a frozen stem)
                x = stage.downsample(x)
                for block in stage.blocks:
                    x = checkpoint(block, x, use_reentrant=False)
            else:
                x = stage(x)
            name = f"res{i + 2}"
            if name in self._out_features:
                outputs[name] = x
        return outputs

    @property
    def size_divisibility(self) -> int:
        return 32


def add_convnext_config(cfg) -> None:
    """
    Add ``MODEL.CONVNEXT`` to a yacs config, for ``build_backbone`` users: the defaults of
    :class:`ConvNeXtBackbone`'s arguments, upper-cased (``LORA_R``, ...).
    """
    from detectron2.config import CfgNode as CN

    cfg.MODEL.CONVNEXT = CN()
    for name, arg in inspect.signature(ConvNeXtBackbone.__init__).parameters.items():
        if name != "self" and name not in _LAZYCONFIG_ONLY:
            value = arg.default
            cfg.MODEL.CONVNEXT[name.upper()] = list(value) if isinstance(value, tuple) else value
