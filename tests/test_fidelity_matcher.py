"""Item 3 of the fidelity list: the original's low-quality re-assignment."""

import torch
from detectron2.structures import Boxes, pairwise_iou

from sar_lora_dino.modeling.matcher import LowQualityReassignMatcher


def _mmdet_reference(iou, pos=0.5, neg=0.4):
    """MaxIoUAssigner(min_pos_iou=0, gt_max_assign_all=True), written out loop by loop."""
    num_gt, num_anchors = iou.shape
    max_iou, argmax = iou.max(dim=0)
    matches, labels = argmax.clone(), torch.full((num_anchors,), -1, dtype=torch.int8)
    labels[max_iou < neg] = 0
    labels[max_iou >= pos] = 1
    for i in range(num_gt):
        best = iou[i] == iou[i].max()
        matches[best] = i
        labels[best] = 1
    return matches, labels


def test_nested_gt_pair_gets_the_original_assignment():
    gts = Boxes(torch.tensor([[0.0, 0.0, 64.0, 64.0], [8.0, 8.0, 40.0, 40.0]]))  # 2nd inside 1st
    anchors = Boxes(
        torch.tensor(
            [
                [0.0, 0.0, 56.0, 56.0],  # IoU 0.77 with the outer GT, the inner GT's best (0.33)
                [0.0, 0.0, 56.0, 56.0],  # a tie: gt_max_assign_all takes it too
                [2.0, 2.0, 66.0, 66.0],  # the outer GT's best
                [200.0, 200.0, 232.0, 232.0],  # far away: negative
            ]
        )
    )
    iou = pairwise_iou(gts, anchors)
    matches, labels = LowQualityReassignMatcher([0.4, 0.5], [0, -1, 1])(iou)
    assert matches.tolist()[:3] == [1, 1, 0] and labels.tolist() == [1, 1, 1, 0]

    d2 = LowQualityReassignMatcher([0.4, 0.5], [0, -1, 1], low_quality_assign="argmax")(iou)
    assert d2[0].tolist()[:3] == [0, 0, 0] and d2[1].tolist() == [1, 1, 1, 0]


def test_later_gt_wins_and_thresholds():
    iou = torch.tensor(
        [
            [0.60, 0.30, 0.399, 0.40, 0.50, 0.00],
            [0.20, 0.30, 0.00, 0.00, 0.00, 0.10],
            [0.10, 0.00, 0.00, 0.00, 0.49, 0.00],
        ]
    )
    matches, labels = LowQualityReassignMatcher([0.4, 0.5], [0, -1, 1])(iou)
    # GT0 best: anchor 0; GT1 best: anchor 1 (0.30, also GT0's argmax: the later GT wins);
    # GT2 best: anchor 4, even though GT0 matches it with IoU 0.5
    assert matches[[0, 1, 4]].tolist() == [0, 1, 2]
    # 0.399 < 0.4 negative, exactly 0.4 ignored, 0.1 of GT1 negative
    assert labels.tolist() == [1, 1, 0, -1, 1, 0]


def test_random_matrices_match_the_reference():
    g = torch.Generator().manual_seed(0)
    for num_gt, num_anchors in [(1, 30), (3, 40), (6, 50)]:
        # coarse values make ties (several best anchors per GT, shared best anchors) common
        iou = torch.randint(0, 8, (num_gt, num_anchors), generator=g).float() / 8
        iou[:, 0] = 0.0
        matches, labels = LowQualityReassignMatcher([0.4, 0.5], [0, -1, 1])(iou)
        ref_matches, ref_labels = _mmdet_reference(iou)
        assert torch.equal(labels, ref_labels)
        assert torch.equal(matches[labels == 1], ref_matches[labels == 1])


def test_no_gt_is_all_negative():
    matches, labels = LowQualityReassignMatcher([0.4, 0.5], [0, -1, 1])(torch.zeros(0, 7))
    assert labels.tolist() == [0] * 7 and matches.shape == (7,)
