"""Memory-lean LoRA training (recomputing MLP, per-stage checkpoints): same numbers, less saved."""

import pytest
import torch
from conftest import TINY

from sar_lora_dino.modeling import ConvNeXtBackbone
from sar_lora_dino.modeling.lean_lora import LeanLoRAMlp
from sar_lora_dino.modeling.lora import LoRALinear


def _backbone(**kw):
    torch.manual_seed(0)
    kw = {**TINY, "finetune": "lora", **kw}
    bb = ConvNeXtBackbone(**kw)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in bb.named_parameters():  # a trained-looking model: B != 0, gamma ~ 1
            if name.endswith("lora_B") or name.endswith("gamma"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return bb.train()


def _step(bb, x):
    """Loss, gradients of every trainable parameter, MiB saved for backward (params excluded)."""
    params = {p.untyped_storage().data_ptr() for p in bb.parameters()}
    saved = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            saved[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = bb(x)
    w = torch.Generator().manual_seed(2)
    loss = sum((v * torch.randn(v.shape, generator=w)).sum() for v in out.values())
    loss.backward()
    grads = {n: p.grad for n, p in bb.named_parameters() if p.requires_grad}
    return loss.detach(), grads, sum(saved.values())


X = torch.rand(2, 3, 96, 112) * 255


@pytest.mark.parametrize(
    "kw",
    [
        {"lora_targets": ["mlp.fc1", "mlp.fc2"]},
        {"lora_targets": ["mlp.fc2"], "trainable_stages": [3]},  # fc1 a plain trainable Linear
    ],
)
def test_lean_mlp_gives_identical_loss_and_gradients(kw):
    loss0, grads0, saved0 = _step(_backbone(**kw), X)
    lean = _backbone(lean_lora_mlp=True, **kw)
    assert all(type(b.mlp) is LeanLoRAMlp for s in lean.stages for b in s.blocks)
    loss1, grads1, saved1 = _step(lean, X)
    assert torch.equal(loss0, loss1)
    assert grads0.keys() == grads1.keys()
    for n in grads0:
        assert grads1[n] is not None, n
        assert torch.equal(grads0[n], grads1[n]), n
    assert saved1 < 0.6 * saved0


def test_checkpointed_stages_give_lora_gradients_and_save_less():
    loss0, grads0, saved0 = _step(_backbone(), X)
    loss1, grads1, saved1 = _step(_backbone(checkpoint_stages=[0, 1, 2, 3]), X)
    assert torch.equal(loss0, loss1)
    lora = [n for n in grads0 if "lora_" in n]
    assert lora and all(grads1[n] is not None for n in lora)  # non-reentrant: frozen stem is fine
    for n in grads0:
        torch.testing.assert_close(grads1[n], grads0[n], rtol=0, atol=0)
    assert saved1 < 0.5 * saved0


def test_lean_mlp_is_the_stock_forward_in_eval_and_when_merged():
    lean = _backbone(lean_lora_mlp=True).eval()
    ref = _backbone().eval()
    with torch.no_grad():
        a, b = lean(X), ref(X)
    assert all(torch.equal(a[k], b[k]) for k in a)
    lean.train()
    for m in lean.modules():
        if isinstance(m, LoRALinear):
            m.merge()
    assert not any(b.mlp._applies() for s in lean.stages for b in s.blocks)


def test_lean_mlp_needs_lora_on_fc2():
    with pytest.raises(ValueError, match="lean_lora_mlp"):
        ConvNeXtBackbone(**TINY, finetune="full", lean_lora_mlp=True)


def test_lean_mlp_is_identical_under_bf16_autocast():
    def run(**kw):
        bb = _backbone(**kw)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = sum(v.float().sum() * (i + 1) for i, v in enumerate(bb(X).values()))
        loss.backward()
        return loss.detach(), {n: p.grad for n, p in bb.named_parameters() if p.requires_grad}

    (loss0, grads0), (loss1, grads1) = run(), run(lean_lora_mlp=True)
    assert torch.equal(loss0, loss1)
    assert all(torch.equal(grads0[n], grads1[n]) for n in grads0)
