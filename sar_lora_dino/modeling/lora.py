"""Low-rank adapters (LoRA) for frozen nn.Linear layers, with injection and merge helpers."""

import math
from typing import Dict, Iterable, List, Set

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LoRALinear",
    "inject_lora",
    "merge_lora",
    "unmerge_lora",
    "lora_state_dict_keys",
    "merged_state_dict",
]


class LoRALinear(nn.Linear):
    """
    A frozen nn.Linear plus a trainable low-rank update: ``y = W x + b + (alpha / r) * B A x``,
    rank ``r`` a positive int, ``dropout`` in [0, 1) on the LoRA branch's input only.

    The base parameters keep the names ``weight`` and ``bias`` so a plain checkpoint of the
    unwrapped model (e.g. ``...mlp.fc1.weight``) loads unchanged; ``lora_A`` (r x in) starts
    Kaiming-uniform and ``lora_B`` (out x r) at zero, so a fresh adapter is an exact no-op.
    Backward keeps only the input and the r-wide hidden product (the frozen base keeps none).

    Merging folds ``B A`` into ``weight``, only through :meth:`merge` (undone by :meth:`unmerge`),
    never implicitly in ``train()``/``eval()``; a merged layer is for inference only (as in
    peft). Its state dict still holds the unmerged base weight beside the adapter, so a
    checkpoint never counts the update twice; loading into a merged layer unmerges it first.
    To export a model without adapters use :func:`merged_state_dict`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        r: int = 16,
        alpha: float = 32,
        dropout: float = 0.0,
        device=None,
        dtype=None,
    ):
        if not isinstance(r, int) or isinstance(r, bool) or r <= 0:
            raise ValueError(f"LoRA rank r must be a positive int, got {r!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout!r}")
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.r = r
        self.alpha = alpha
        self.scaling = alpha / r
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self._adopt_base(self.weight, self.bias)

    def _adopt_base(self, weight: nn.Parameter, bias) -> None:
        """Take ``weight``/``bias`` as the frozen base and put a fresh adapter beside them."""
        self.weight = weight.requires_grad_(False)
        self.bias = None if bias is None else bias.requires_grad_(False)
        factory = {"device": weight.device, "dtype": weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(self.r, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.empty(self.out_features, self.r, **factory))
        # as in the LoRA paper's code: A Kaiming-uniform, B zeros
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, r: int = 16, alpha: float = 32, dropout: float = 0.0
    ) -> "LoRALinear":
        """
        Wrap an existing layer; its ``weight``/``bias`` Parameters are shared (not copied) and
        frozen. ``r``, ``alpha``, ``dropout``: see the class docstring.
        """
        if type(linear) is not nn.Linear:
            raise TypeError(f"from_linear expects an nn.Linear, got {type(linear).__name__}")
        layer = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            r=r,
            alpha=alpha,
            dropout=dropout,
            device="meta",
            dtype=linear.weight.dtype,
        )
        layer._adopt_base(linear.weight, linear.bias)
        return layer.train(linear.training)

    def lora_parameters(self) -> List[nn.Parameter]:
        """The adapter's own parameters: ``[lora_A, lora_B]``."""
        return [self.lora_A, self.lora_B]

    def base_parameters(self) -> List[nn.Parameter]:
        """The wrapped layer's parameters: ``[weight]`` or ``[weight, bias]``."""
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def _delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into ``weight`` (no-op if already merged)."""
        if not self.merged:
            self.weight.add_(self._delta_weight().to(self.weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update back out of ``weight`` (no-op if not merged)."""
        if self.merged:
            self.weight.sub_(self._delta_weight().to(self.weight.dtype))
            self.merged = False

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.merged:
            # Never write W + BA next to A and B: a reload would apply the update twice.
            with torch.no_grad():
                unmerged = self.weight - self._delta_weight().to(self.weight.dtype)
            destination[prefix + "weight"] = unmerged if keep_vars else unmerged.detach()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # State dicts hold unmerged base weights (see _save_to_state_dict).
        self.unmerge()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:
            if self.training:
                raise RuntimeError(
                    "LoRALinear: this layer's adapter is merged into its weight, which is for "
                    "inference only; call .eval() to run it, or unmerge() (unmerge_lora(model)) "
                    "before training"
                )
            return F.linear(x, self.weight, self.bias)
        x2 = x.reshape(-1, self.in_features)
        out = self._add_update_(F.linear(x2, self.weight, self.bias), x2)
        return out.view(*x.shape[:-1], self.out_features)

    def _add_update_(self, out: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Add the low-rank update of the input rows ``x2`` into ``out``, in place."""
        hidden = F.linear(self.lora_dropout(x2), self.lora_A)
        # In place: no second full-width tensor beside the base output. Casts cover autocast,
        # where the matmuls run in half precision but the parameters stay fp32.
        return out.addmm_(hidden.to(out.dtype), self.lora_B.to(out.dtype).t(), alpha=self.scaling)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, r={self.r}, alpha={self.alpha}, "
            f"dropout={getattr(self.lora_dropout, 'p', 0.0)}, merged={self.merged}"
        )


def inject_lora(
    module: nn.Module,
    targets: Iterable[str] = ("mlp.fc1", "mlp.fc2"),
    r: int = 16,
    alpha: float = 32,
    dropout: float = 0.0,
) -> List[str]:
    """
    In ``module``, replace every nn.Linear whose qualified name ends with one of ``targets``
    (on dot boundaries: ``"mlp.fc1"`` matches ``stages.0.blocks.0.mlp.fc1`` but not
    ``xmlp.fc1``) by a :class:`LoRALinear` sharing its weights (``r``, ``alpha``, ``dropout``:
    see there).

    Returns:
        list[str]: qualified names of the replaced layers, in module order.

    Raises:
        ValueError: when nothing matched, when a match is not a plain nn.Linear (e.g. the 1x1
            Conv2d MLP of timm's ``conv_mlp=True`` ConvNeXt variants) or already carries LoRA.
    """
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    if not targets:
        raise ValueError("inject_lora: `targets` is empty")
    found = []
    for name, child in module.named_modules():
        if not name or not any(f".{name}".endswith(f".{t}") for t in targets):
            continue
        if isinstance(child, LoRALinear):
            raise ValueError(f"inject_lora: '{name}' already carries LoRA")
        if isinstance(child, nn.Conv2d):
            raise ValueError(
                f"inject_lora: '{name}' is a {tuple(child.kernel_size)} Conv2d, not nn.Linear. "
                "ConvNeXt variants built with conv_mlp=True (convnext_zepto_rms*, convnext_atto*, "
                "convnext_femto*, convnext_pico*, convnext_nano*, convnext_tiny_hnf, "
                "convnextv2_atto/femto/pico/nano) use 1x1 conv MLPs, which LoRA injection does "
                "not support; use a variant with Linear MLPs (e.g. convnext_tiny/small/base/large)."
            )
        if type(child) is not nn.Linear:
            raise ValueError(
                f"inject_lora: '{name}' matches {targets} but is a {type(child).__name__}; "
                "only plain nn.Linear layers can be wrapped"
            )
        found.append(name)
    if not found:
        linear_names = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
        examples = linear_names[:5] or [n for n, _ in module.named_modules() if n][:5]
        raise ValueError(
            f"inject_lora: no nn.Linear matched targets {list(targets)}; "
            f"module names look like {examples}"
        )
    for name in found:
        module.set_submodule(
            name, LoRALinear.from_linear(module.get_submodule(name), r, alpha, dropout)
        )
    return found


def merge_lora(module: nn.Module) -> int:
    """Merge every :class:`LoRALinear` inside ``module``; returns how many there are."""
    return _each_lora(module, LoRALinear.merge)


def unmerge_lora(module: nn.Module) -> int:
    """Unmerge every :class:`LoRALinear` inside ``module``; returns how many there are."""
    return _each_lora(module, LoRALinear.unmerge)


def _each_lora(module: nn.Module, method) -> int:
    layers = [m for m in module.modules() if isinstance(m, LoRALinear)]
    for m in layers:
        method(m)
    return len(layers)


def lora_state_dict_keys(module: nn.Module) -> Set[str]:
    """State-dict keys of the adapter parameters inside ``module``, found by module type:
    e.g. ``{"stages.0.blocks.0.mlp.fc1.lora_A", ...}``."""
    return {
        f"{name}.{part}" if name else part
        for name, m in module.named_modules()
        if isinstance(m, LoRALinear)
        for part in ("lora_A", "lora_B")
    }


def merged_state_dict(module: nn.Module) -> Dict[str, torch.Tensor]:
    """
    The state dict ``module`` would have with every :class:`LoRALinear` replaced by a plain
    nn.Linear holding ``W + (alpha / r) B A``: adapter tensors dropped, updates folded in (in
    fp32, then cast to the weight's dtype); it loads strictly into the same model built
    without LoRA. ``module`` itself is not changed.
    """
    state = module.state_dict()  # unmerged base weights, merged layers or not
    for name, m in module.named_modules():
        if not isinstance(m, LoRALinear):
            continue
        base = f"{name}." if name else ""
        weight = state[base + "weight"]
        a, b = state.pop(base + "lora_A"), state.pop(base + "lora_B")
        delta = (b.float() @ a.float()) * m.scaling
        state[base + "weight"] = (weight.float() + delta).to(weight.dtype)
    return state
