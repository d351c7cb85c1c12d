"""Anchor matching with the original's low-quality re-assignment as a switch."""

import torch
from detectron2.modeling.matcher import Matcher

__all__ = ["LowQualityReassignMatcher"]

_LOW_QUALITY_ASSIGN = ("last_gt", "argmax")


class LowQualityReassignMatcher(Matcher):
    """
    detectron2's IoU :class:`Matcher` (same arguments) with the original's low-quality
    matching as ``low_quality_assign``.

    Both first label each anchor by its best IoU as detectron2 does (for thresholds [0.4, 0.5]
    and labels [0, -1, 1]: < 0.4 negative, < 0.5 ignored, else positive, matched to the argmax
    GT). Then, with ``allow_low_quality_matches``, every GT's best anchors (ties too) become
    positive:

    * "last_gt" (the original, MMDetection ``MaxIoUAssigner`` with ``min_pos_iou=0`` and
      ``gt_max_assign_all=True``): those anchors are re-assigned to that GT, GTs taken in
      order so a later GT wins, even over another GT's IoU >= 0.5 match. As in the original,
      this applies to every GT, also one whose best IoU is 0 (a zero-area box): all anchors
      then become its positives. Data filtering keeps such boxes out of training.
    * "argmax" (detectron2): those anchors are only labelled positive and keep their
      argmax GT.
    """

    def __init__(
        self, thresholds, labels, allow_low_quality_matches=True, low_quality_assign="last_gt"
    ):
        super().__init__(list(thresholds), list(labels), allow_low_quality_matches)
        if low_quality_assign not in _LOW_QUALITY_ASSIGN:
            raise ValueError(
                f"LowQualityReassignMatcher low_quality_assign must be one of "
                f"{_LOW_QUALITY_ASSIGN}, got {low_quality_assign!r}"
            )
        self.low_quality_assign = low_quality_assign

    def __call__(self, match_quality_matrix):
        """As detectron2's :meth:`Matcher.__call__`, with the re-assignment of "last_gt"."""
        matches, match_labels = super().__call__(match_quality_matrix)
        iou = match_quality_matrix
        if self.allow_low_quality_matches and self.low_quality_assign == "last_gt" and iou.numel():
            # detectron2 has labelled every GT's best anchors positive; re-assign each of them
            # to the last GT (1-based in last_gt, 0 for none) for which it is a best anchor
            is_best = iou == iou.max(dim=1).values[:, None]
            gt_rank = torch.arange(1, iou.size(0) + 1, device=iou.device)[:, None]
            last_gt = (is_best * gt_rank).max(dim=0).values
            reassigned = last_gt > 0
            matches[reassigned] = last_gt[reassigned] - 1
        return matches, match_labels


SARMatcher = LowQualityReassignMatcher  # deprecated alias (saved configs)
