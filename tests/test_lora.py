"""LoRALinear maths, injection rules and the memory kept for backward."""

import pytest
import timm
import torch
from torch import nn

from sar_lora_dino.modeling import (
    ConvNeXtBackbone,
    LoRALinear,
    inject_lora,
    merge_lora,
    merged_state_dict,
    unmerge_lora,
)
from sar_lora_dino.modeling.convnext import _LeanConv2d


def _layer(seed=0, **kwargs):
    torch.manual_seed(seed)
    base = nn.Linear(12, 20)
    return base, LoRALinear.from_linear(base, **{"r": 4, "alpha": 8, **kwargs})


def test_fresh_adapter_is_exact_noop():
    base, lora = _layer()
    x = torch.randn(2, 5, 7, 12)
    assert torch.equal(lora(x), base(x))
    assert lora.scaling == 2.0 and lora.lora_A.shape == (4, 12) and lora.lora_B.shape == (20, 4)
    assert torch.count_nonzero(lora.lora_B) == 0 and torch.count_nonzero(lora.lora_A) > 0


def test_keeps_base_names_and_freezes_base():
    base, lora = _layer()
    assert set(lora.state_dict()) == {"weight", "bias", "lora_A", "lora_B"}
    assert lora.weight is base.weight and lora.bias is base.bias
    assert not lora.weight.requires_grad and not lora.bias.requires_grad
    assert lora.lora_A.requires_grad and lora.lora_B.requires_grad
    assert isinstance(lora.lora_dropout, nn.Identity)
    assert isinstance(_layer(dropout=0.1)[1].lora_dropout, nn.Dropout)


def test_merge_unmerge_roundtrip():
    _, lora = _layer()
    lora.eval()  # a merged layer runs in eval mode only
    nn.init.normal_(lora.lora_B)
    original = lora.weight.detach().clone()
    x = torch.randn(3, 12)
    unmerged = lora(x)
    assert not torch.allclose(unmerged, torch.nn.functional.linear(x, original, lora.bias))
    lora.merge()
    lora.merge()  # idempotent
    assert lora.merged
    torch.testing.assert_close(lora(x), unmerged, rtol=1e-4, atol=1e-5)
    lora.train()
    lora.eval()  # never merges or unmerges implicitly
    assert lora.merged
    lora.unmerge()
    lora.unmerge()
    assert not lora.merged
    torch.testing.assert_close(lora.weight, original, rtol=0, atol=1e-6)
    torch.testing.assert_close(lora(x), unmerged, rtol=1e-5, atol=1e-6)


def test_merge_helpers_visit_every_layer(tiny_backbone):
    backbone = tiny_backbone(finetune="lora").eval()
    for m in backbone.modules():
        if isinstance(m, LoRALinear):
            nn.init.normal_(m.lora_B, std=0.1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = backbone(x)["res5"]
        assert merge_lora(backbone) == 10
        merged = backbone(x)["res5"]
        assert unmerge_lora(backbone) == 10
    torch.testing.assert_close(merged, before, rtol=1e-4, atol=1e-5)


def test_merged_layer_refuses_to_train():
    _, lora = _layer()
    lora.merge()
    x = torch.randn(3, 12)
    with pytest.raises(RuntimeError, match=r"merged.*inference only.*eval\(\).*unmerge"):
        lora.train()(x)
    lora.eval()(x)
    lora.unmerge()
    lora.train()(x).sum().backward()
    assert lora.lora_A.grad is not None


def test_state_dict_of_merged_layer_holds_unmerged_weight():
    base, lora = _layer()
    nn.init.normal_(lora.lora_B)
    original = lora.weight.detach().clone()
    before = {k: v.clone() for k, v in lora.state_dict().items()}
    lora.merge()
    saved = lora.state_dict()
    assert set(saved) == {"weight", "bias", "lora_A", "lora_B"}
    torch.testing.assert_close(saved["weight"], original, rtol=0, atol=1e-6)
    assert not torch.allclose(lora.weight, original)  # the layer itself stays merged
    # Loading into a merged layer unmerges it first, so the update is never applied twice.
    fresh = LoRALinear.from_linear(nn.Linear(12, 20), r=4, alpha=8)
    fresh.merge()
    fresh.load_state_dict(before)
    assert not fresh.merged
    x = torch.randn(3, 12)
    torch.testing.assert_close(fresh.eval()(x), lora.eval()(x), rtol=1e-4, atol=1e-5)


def test_merged_state_dict_loads_into_plain_model(tiny_backbone):
    lora = tiny_backbone(finetune="lora").eval()
    for m in lora.modules():
        if isinstance(m, LoRALinear):
            nn.init.normal_(m.lora_B, std=0.1)
    plain = tiny_backbone(finetune="frozen").eval()
    state = merged_state_dict(lora)
    assert not [k for k in state if "lora_" in k]
    plain.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(plain(x)["res5"], lora(x)["res5"], rtol=1e-4, atol=1e-5)
        assert not any(isinstance(m, LoRALinear) and m.merged for m in lora.modules())


@pytest.mark.parametrize("r", [0, -1, 2.0])
def test_rejects_bad_rank(r):
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(4, 4, r=r)


def test_rejects_bad_dropout():
    with pytest.raises(ValueError, match="dropout"):
        LoRALinear(4, 4, r=2, dropout=1.0)


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(4, 8)
        self.xmlp = nn.Module()
        self.xmlp.fc1 = nn.Linear(4, 8)
        self.proj = nn.Linear(4, 4)


def test_inject_matches_on_dot_boundaries():
    model = _Toy()
    assert inject_lora(model, ("mlp.fc1",), r=2) == ["mlp.fc1"]
    assert isinstance(model.mlp.fc1, LoRALinear)
    assert type(model.xmlp.fc1) is nn.Linear
    with pytest.raises(ValueError, match="already carries LoRA"):
        inject_lora(model, ("mlp.fc1",), r=2)


def test_inject_without_match_raises():
    with pytest.raises(ValueError, match=r"no nn.Linear matched targets \['attn.qkv'\].*proj"):
        inject_lora(_Toy(), ("attn.qkv",))


def test_conv_mlp_variants_are_rejected_clearly():
    model = timm.create_model("convnext_atto", depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))
    with pytest.raises(ValueError, match=r"stages\.0\.blocks\.0\.mlp\.fc1.*conv_mlp=True.*atto"):
        inject_lora(model)
    with pytest.raises(ValueError, match="conv_mlp=True"):
        ConvNeXtBackbone(arch="convnext_atto", depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))
    frozen = ConvNeXtBackbone(
        arch="convnext_atto", finetune="frozen", depths=(1, 1, 1, 1), dims=(8, 16, 32, 64)
    )
    assert frozen(torch.randn(1, 3, 64, 64))["res5"].shape == (1, 64, 2, 2)


def _saved_numels(fn):
    sizes = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sizes


def test_lora_keeps_no_full_width_activation():
    _, lora = _layer()
    x = torch.randn(6, 12, requires_grad=True)
    out, sizes = _saved_numels(lambda: lora(x))
    params = (lora.weight.numel(), lora.lora_A.numel(), lora.lora_B.numel())
    activations = [n for n in sizes if n not in params]
    # Only the input (for lora_A's gradient) and the r-wide hidden product are kept.
    assert sorted(activations) == sorted([6 * 12, 6 * 4])
    out.sum().backward()
    assert x.grad is not None and lora.lora_B.grad is not None and lora.weight.grad is None


def test_frozen_conv_keeps_only_its_weight():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 7, padding=3, groups=8).requires_grad_(False)
    stock = nn.Conv2d(8, 8, 7, padding=3, groups=8).requires_grad_(False)
    stock.load_state_dict(conv.state_dict())
    conv.__class__ = _LeanConv2d
    lean = conv
    x = torch.randn(2, 8, 9, 11, requires_grad=True)
    out, sizes = _saved_numels(lambda: lean(x))
    assert sizes == [lean.weight.numel()]
    (grad,) = torch.autograd.grad((out * out).sum(), x)
    ref = stock(x)
    (ref_grad,) = torch.autograd.grad((ref * ref).sum(), x)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)


def test_lora_backbone_keeps_less_than_full(tiny_backbone):
    x = torch.randn(2, 3, 64, 64)
    kept = {}
    for mode in ("lora", "full"):
        backbone = tiny_backbone(finetune=mode)
        _, sizes = _saved_numels(lambda: backbone(x))
        params = sum(p.numel() for p in backbone.parameters())
        kept[mode] = sum(sizes) - params
    assert kept["lora"] < 0.8 * kept["full"], kept


def test_autocast_forward_backward():
    _, lora = _layer()
    nn.init.normal_(lora.lora_B)
    x = torch.randn(4, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lora(x)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert lora.lora_A.grad.dtype == torch.float32 and lora.lora_B.grad is not None
