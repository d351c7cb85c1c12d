"""Memory-lean training of LoRA MLPs: keep only the input, recompute fc1 in backward."""

import torch
from timm.layers import Mlp
from torch import nn

from .lora import LoRALinear

__all__ = ["LeanLoRAMlp", "make_lean_lora_mlps"]


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
        device_type = u.device.type
        enabled = torch.is_autocast_enabled(device_type)
        dtype = torch.get_autocast_dtype(device_type) if enabled else None
        ctx.autocast = (device_type, enabled, dtype)
        ctx.save_for_backward(u)
        with torch.no_grad():
            return Mlp.forward(mlp, u)

    @staticmethod
    def backward(ctx, dy):
        (u,) = ctx.saved_tensors
        mlp = ctx.mlp
        fc2 = mlp.fc2
        device_type, enabled, dtype = ctx.autocast
        dy2 = dy.reshape(-1, fc2.out_features)
        with torch.enable_grad(), torch.autocast(device_type, dtype=dtype, enabled=enabled):
            leaf = u.detach().requires_grad_(u.requires_grad)
            g = mlp.norm(mlp.drop1(mlp.act(mlp.fc1(leaf))))
            g2 = g.reshape(-1, fc2.in_features)
            update = fc2._add_update_(torch.zeros_like(dy2), g2)
        inputs = ([leaf] if u.requires_grad else []) + list(ctx.params)
        outputs, grad_outputs = [update], [dy2]
        if g2.requires_grad:  # fc1 or the MLP input needs gradients
            outputs.append(g2)
            # F.linear(g2, W, b) is addmm(b, g2, W^T); its input gradient is dy @ W
            grad_outputs.append(dy2.mm(fc2.weight.to(dy2.dtype)))
        grads = list(torch.autograd.grad(outputs, inputs, grad_outputs))
        du = grads.pop(0) if u.requires_grad else None
        return (du, None, *grads)


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
        trainable = [*self.fc1.parameters(), self.fc2.lora_A, self.fc2.lora_B]
        params = [p for p in trainable if p.requires_grad]
        if not (x.requires_grad or params):
            return super().forward(x)
        return _RecomputeMlp.apply(x, self, *params)


def make_lean_lora_mlps(module: nn.Module) -> int:
    """
    Turn every timm Mlp in ``module`` whose ``fc2`` carries LoRA into a :class:`LeanLoRAMlp`
    (same parameters, buffers and hooks; only forward changes). Returns how many.
    """
    n = 0
    for m in module.modules():
        if type(m) is Mlp and isinstance(m.fc2, LoRALinear):
            m.__class__ = LeanLoRAMlp
            n += 1
    return n
