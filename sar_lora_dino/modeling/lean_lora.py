"""Memory-lean training of LoRA ConvNeXt blocks: a recomputing MLP and per-block checkpoints."""

from typing import List

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn
from torch.utils.checkpoint import checkpoint

from .lora import LoRALinear

__all__ = ["LeanLoRAMlp", "make_lean_lora_mlps", "checkpointed_stage_forward"]


def _autocast_state(device_type):
    if not torch.is_autocast_enabled(device_type):
        return device_type, False, None
    return device_type, True, torch.get_autocast_dtype(device_type)


class _RecomputeMlp(torch.autograd.Function):
    """
    ``fc2(act(fc1(u)))`` that saves only ``u`` and recomputes ``fc1`` and ``act`` in backward.

    Backward rebuilds ``fc1``/``act`` and the r-wide LoRA branch of ``fc2`` with the very ops of
    the ordinary forward and lets autograd differentiate them; the frozen ``fc2`` base product
    is not recomputed (its input gradient needs only its weight). Gradients are those of the
    ordinary graph: same ops, same backward formulas, same order of the two-term sums.
    """

    @staticmethod
    def forward(ctx, u, mlp, *params):
        ctx.mlp = mlp
        ctx.params = params
        ctx.autocast = _autocast_state(u.device.type)
        ctx.save_for_backward(u)
        with torch.no_grad():
            return mlp.plain_forward(u)

    @staticmethod
    def backward(ctx, dy):
        (u,) = ctx.saved_tensors
        mlp = ctx.mlp
        fc2 = mlp.fc2
        device_type, enabled, dtype = ctx.autocast
        params = list(ctx.params)
        with torch.enable_grad(), torch.autocast(device_type, dtype=dtype, enabled=enabled):
            leaf = u.detach().requires_grad_(u.requires_grad)
            g = mlp.norm(mlp.drop1(mlp.act(mlp.fc1(leaf))))
            g2 = g.reshape(-1, fc2.in_features)
            # LoRALinear.forward's update: out.addmm_(hidden, B^T, alpha); same grad formulas
            hidden = F.linear(g2, fc2.lora_A)
            zero = torch.zeros((), dtype=hidden.dtype, device=hidden.device)
            update = torch.addmm(zero, hidden, fc2.lora_B.to(hidden.dtype).t(), beta=0.0,
                                 alpha=fc2.scaling)  # fmt: skip
        dy2 = dy.reshape(-1, fc2.out_features)
        # F.linear(g2, W, b) is addmm(b, g2, W^T); its input gradient is dy @ W
        dg_base = dy2.mm(fc2.weight.to(dy2.dtype)) if g2.requires_grad else None
        inputs = ([leaf] if u.requires_grad else []) + params
        outputs, grad_outputs = [update], [dy2.to(update.dtype)]
        if g2.requires_grad:  # fc1 or the MLP input needs gradients
            outputs.append(g2)
            grad_outputs.append(dg_base)
        grads = torch.autograd.grad(outputs, inputs, grad_outputs)
        du = grads[0] if u.requires_grad else None
        return (du, None) + tuple(grads[1:] if u.requires_grad else grads)


class LeanLoRAMlp(Mlp):
    """
    timm's :class:`~timm.layers.Mlp` whose training forward keeps only its input for backward.

    A stock LoRA MLP saves its 4C-wide ``fc1`` output (for the activation's backward) and the
    4C-wide activation output (for ``fc2``'s ``lora_A`` gradient); this one saves the C-wide
    input and recomputes ``fc1`` + activation in backward (one extra ``fc1`` product per step).
    Parameters, names and outputs are unchanged. It applies while ``fc2`` is an unmerged
    :class:`LoRALinear` with frozen base weights and no dropout and the MLP has no dropout or
    norm; otherwise (and in eval / no-grad) it is the stock forward.
    """

    @classmethod
    def from_mlp(cls, mlp: Mlp) -> "LeanLoRAMlp":
        if type(mlp) is not Mlp:
            raise TypeError(f"LeanLoRAMlp wraps a timm Mlp, got {type(mlp).__name__}")
        mlp.__class__ = cls  # same parameters, buffers and hooks; only forward changes
        return mlp

    def plain_forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)

    def trainable(self) -> List[nn.Parameter]:
        return list(self.fc1.parameters()) + [self.fc2.lora_A, self.fc2.lora_B]

    def _applies(self) -> bool:
        fc2 = self.fc2
        return (
            isinstance(fc2, LoRALinear)
            and not fc2.merged
            and isinstance(fc2.lora_dropout, nn.Identity)
            and not any(p.requires_grad for p in fc2.base_parameters())
            and all(
                isinstance(m, nn.Identity) or (isinstance(m, nn.Dropout) and m.p == 0)
                for m in (self.drop1, self.norm, self.drop2)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.is_grad_enabled() and self._applies()):
            return super().forward(x)
        params = [p for p in self.trainable() if p.requires_grad]
        if not (x.requires_grad or params):
            return super().forward(x)
        return _RecomputeMlp.apply(x, self, *params)


def make_lean_lora_mlps(module: nn.Module) -> int:
    """
    Turn every timm Mlp in ``module`` whose ``fc2`` carries LoRA into a :class:`LeanLoRAMlp`.

    Returns:
        int: number of MLPs converted.
    """
    n = 0
    for m in module.modules():
        if type(m) is Mlp and isinstance(m.fc2, LoRALinear):
            LeanLoRAMlp.from_mlp(m)
            n += 1
    return n


def checkpointed_stage_forward(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """
    A timm ConvNeXt stage with a non-reentrant activation checkpoint around each block.

    Each block keeps only its input and is recomputed in backward. Non-reentrant checkpoints
    give gradients to parameters inside the block even when ``x`` does not require grad (a
    frozen stem in LoRA training), which the reentrant variant silently does not.
    """
    x = stage.downsample(x)
    for block in stage.blocks:
        if torch.is_grad_enabled() and stage.training:
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x
