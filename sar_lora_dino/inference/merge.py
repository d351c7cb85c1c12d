"""Merging the detections of overlapping tiles: per-class NMS or greedy non-maximum merging."""

import torch
from detectron2.structures import Boxes, pairwise_ioa, pairwise_iou

__all__ = ["MERGE_METHODS", "MATCH_METRICS", "pairwise_overlap", "merge_detections"]

MERGE_METHODS = ("nms", "greedy_nmm")
MATCH_METRICS = ("iou", "ios")


def pairwise_overlap(boxes1, boxes2, metric="ios"):
    """
    Args:
        boxes1, boxes2 (Tensor): Nx4 and Mx4 XYXY.
        metric (str): "iou", or "ios" (intersection over the smaller of the two areas: 1 when
            one box lies inside the other, as a box cut by a tile border lies inside the whole
            object's box).

    Returns:
        Tensor: NxM overlaps in [0, 1].
    """
    if metric not in MATCH_METRICS:
        raise ValueError(f"match metric must be one of {MATCH_METRICS}, got {metric!r}")
    b1, b2 = Boxes(boxes1), Boxes(boxes2)
    if metric == "iou":
        return pairwise_iou(b1, b2)
    return torch.maximum(pairwise_ioa(b1, b2), pairwise_ioa(b2, b1).T)


def _greedy_groups(boxes, scores, metric, threshold):
    """Greedy matching by score (then area): each kept box takes the later boxes it overlaps."""
    by_area = torch.argsort(Boxes(boxes).area(), descending=True, stable=True)
    order = by_area[torch.argsort(scores[by_area], descending=True, stable=True)]
    matches = pairwise_overlap(boxes[order], boxes[order], metric) > threshold
    taken = torch.zeros(len(order), dtype=torch.bool)
    groups = []
    for i in range(len(order)):
        if not taken[i]:  # every box before i is taken, so the group's first member is i
            members = matches[i] & ~taken
            members[i] = True
            taken |= members
            groups.append(order[members])
    return groups


def merge_detections(boxes, scores, classes, method="greedy_nmm", metric="ios", threshold=0.5):
    """
    Merge the detections of overlapping tiles, class by class, so an object seen by two tiles
    (or cut by a tile border) is reported once. Boxes are matched when their overlap
    (``metric``) exceeds ``threshold``, the highest score first (the larger box first among
    equal scores).

    * "nms": a matched lower-scored box is dropped;
    * "greedy_nmm" (greedy non-maximum merging): matched boxes are merged into the smallest box
      enclosing them all, with the highest score. With "ios" a partial box cut at a tile border
      merges into the box of the whole object seen by the neighbouring tile.

    Args:
        boxes (Tensor): Nx4 XYXY in scene pixels, with N ``scores`` and ``classes``.

    Returns:
        tuple[Tensor, Tensor, Tensor]: boxes, scores and classes after merging, sorted by
        decreasing score.
    """
    if method not in MERGE_METHODS:
        raise ValueError(f"merge method must be one of {MERGE_METHODS}, got {method!r}")
    boxes, scores = boxes.float().reshape(-1, 4), scores.float().reshape(-1)
    classes = classes.long().reshape(-1)
    out_boxes, out_scores, out_classes = [], [], []
    for c in torch.unique(classes):
        idx = torch.nonzero(classes == c).flatten()
        for group in _greedy_groups(boxes[idx], scores[idx], metric, threshold):
            members = boxes[idx[group]]
            if method == "nms":
                out_boxes.append(members[0])
            else:
                out_boxes.append(
                    torch.cat([members[:, :2].min(0).values, members[:, 2:].max(0).values])
                )
            out_scores.append(scores[idx[group[0]]])  # the group's highest score
            out_classes.append(c)
    if not out_boxes:
        return boxes[:0], scores[:0], classes[:0]
    boxes, scores = torch.stack(out_boxes), torch.stack(out_scores)
    classes = torch.stack(out_classes)
    order = torch.argsort(scores, descending=True, stable=True)
    return boxes[order], scores[order], classes[order]
