"""Item 6 of the fidelity list: dw/dh clamped on both sides before exp."""

import math

import torch

from sar_lora_dino.modeling.box_transform import TwoSidedClampBox2BoxTransform


def test_dw_minus_6_decodes_to_about_1px():
    anchor = torch.tensor([[0.0, 0.0, 64.0, 64.0]])
    deltas = torch.tensor([[0.0, 0.0, -6.0, 0.0]])
    box = TwoSidedClampBox2BoxTransform((1.0, 1.0, 1.0, 1.0)).apply_deltas(deltas, anchor)[0]
    width = (box[2] - box[0]).item()
    assert abs(width - 64 * 16 / 1000) < 1e-4  # 1.024 px: exp(-log(1000 / 16)) * 64
    assert abs((box[0] + box[2]).item() / 2 - 32) < 1e-5

    d2 = TwoSidedClampBox2BoxTransform((1.0, 1.0, 1.0, 1.0), two_sided_clamp=False)
    width_d2 = (lambda b: (b[2] - b[0]).item())(d2.apply_deltas(deltas, anchor)[0])
    assert abs(width_d2 - 64 * math.exp(-6)) < 1e-4  # 0.159 px


def test_within_the_clamp_it_matches_detectron2():
    torch.manual_seed(0)
    boxes = torch.rand(50, 2) * 100
    boxes = torch.cat([boxes, boxes + 1 + torch.rand(50, 2) * 80], dim=1)
    deltas = torch.randn(50, 8) * 2  # two boxes per anchor, most inside +-4.135
    weights = (10.0, 10.0, 5.0, 5.0)
    ours = TwoSidedClampBox2BoxTransform(weights).apply_deltas(deltas, boxes)
    theirs = TwoSidedClampBox2BoxTransform(weights, two_sided_clamp=False).apply_deltas(
        deltas, boxes
    )
    assert ours.shape == (50, 8)
    torch.testing.assert_close(ours, theirs)
    # large positive dw: both clamp from above
    big = torch.tensor([[0.0, 0.0, 9.0, 9.0]])
    anchor = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    out = TwoSidedClampBox2BoxTransform((1.0, 1.0, 1.0, 1.0)).apply_deltas(big, anchor)[0]
    assert abs((out[2] - out[0]).item() - 1000.0) < 1e-2
