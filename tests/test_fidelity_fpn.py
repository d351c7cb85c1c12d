"""Items 1 and 8 of the fidelity list: P7 without ReLU, Xavier-uniform FPN init."""

import math

import pytest
import torch
from _models import tiny_backbone, tiny_model

from sar_lora_dino.modeling.fpn import NoReLULastLevelP6P7

# 16 -> 64 channels on the P3 lateral and 48 -> 64 on P6 make the two inits' bounds differ.
DIMS = [8, 16, 32, 48]


def test_p7_is_conv_of_p6_without_relu():
    torch.manual_seed(0)
    block = NoReLULastLevelP6P7(8, 16, in_feature="res5")
    c5 = torch.randn(1, 8, 9, 7)
    p6, p7 = block(c5)
    assert (p6 < 0).any()  # otherwise the ReLU would be a no-op and prove nothing
    torch.testing.assert_close(p7, block.p7(p6), rtol=0, atol=0)
    assert not torch.allclose(p7, block.p7(torch.relu(p6)))

    block.relu_before_p7 = True  # detectron2's behaviour
    torch.testing.assert_close(block(c5)[1], block.p7(torch.relu(p6)), rtol=0, atol=0)


def _build_fpn(init):
    overrides = {"backbone.out_channels": 64, "backbone.init": init}
    return tiny_model(bottom_up={"dims": DIMS}, overrides=overrides).backbone


def _xavier_bound(conv):
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    return math.sqrt(6.0 / (fan_in + fan_out))


def test_fpn_convs_are_xavier_uniform():
    fpn = _build_fpn("xavier_uniform")
    convs = [
        m
        for n, m in fpn.named_modules()
        if isinstance(m, torch.nn.Conv2d) and not n.startswith("bottom_up.")
    ]
    assert len(convs) == 3 + 3 + 2  # laterals, outputs, P6, P7
    for conv in convs:
        bound = _xavier_bound(conv)
        w = conv.weight.detach().abs()
        assert w.max() <= bound and w.max() > 0.9 * bound
        assert torch.count_nonzero(conv.bias) == 0
    # the backbone is left alone: the same weights as the backbone built alone from the seed
    alone = tiny_backbone(dims=DIMS).state_dict()
    assert all(torch.equal(v, alone[k]) for k, v in fpn.bottom_up.state_dict().items())


def test_fpn_c2_xavier_keeps_detectron2_init():
    fpn = _build_fpn("c2_xavier")
    lateral, p6 = fpn.fpn_lateral3, fpn.top_block.p6
    for conv in (lateral, p6):  # c2_xavier_fill's bound sqrt(3 / fan_in) exceeds Xavier's here
        assert conv.weight.abs().max() > _xavier_bound(conv)
    with pytest.raises(ValueError, match="init"):
        _build_fpn("kaiming")
