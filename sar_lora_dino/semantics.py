"""Where the original's (MMDetection) RetinaNet differs from detectron2's: one table, one switch."""

from typing import Any, NamedTuple, Optional

__all__ = ["Difference", "DIFFERENCES", "RESIZE_FIELD", "set_semantics", "markdown_table"]

# The resize switch is the ``backend`` of every SARResize in the train and test mappers.
RESIZE_FIELD = "dataloader.{train,test}.mapper.augmentations.0.backend"


class Difference(NamedTuple):
    """One measured difference (REFERENCE section 7) and the config field that switches it."""

    field: Optional[str]  # path from the config root; None when nothing is switched
    original: Any  # the value that reproduces the original (our components' default)
    detectron2: Any  # the value that reproduces stock detectron2
    changes: str
    matters: str


DIFFERENCES = (
    Difference(
        "model.backbone.top_block.relu_before_p7",
        False,
        True,
        "P7 = conv(P6), not conv(relu(P6))",
        "the original's `relu_before_extra_convs=False`; P7 differed by ~100%",
    ),
    Difference(
        "model.loss_normalizer",
        "batch",
        "ema",
        "both losses divided by this batch's positive anchors (each image at least 1), not an "
        "EMA starting at 100",
        "the EMA is not saved in checkpoints, so it restarts on resume",
    ),
    Difference(
        "model.anchor_matcher.low_quality_assign",
        "last_gt",
        "argmax",
        "each GT's best anchors are re-assigned to that GT (ties included, later GT wins)",
        "MaxIoUAssigner with `min_pos_iou=0`; 67 anchors in 16 of 202 GT sets differed",
    ),
    Difference(
        "model.clip_before_nms",
        True,
        False,
        "decoded boxes clipped to the image before NMS, not after",
        "changes which boxes NMS keeps",
    ),
    Difference(
        "model.drop_empty_before_nms",
        True,
        False,
        "zero-area boxes dropped before NMS and the top-100 cut",
        "detectron2 can return fewer than 100",
    ),
    Difference(
        "model.box2box_transform.two_sided_clamp",
        True,
        False,
        "dw/dh clamped to ±log(1000/16), not only from above",
        "dw = -6 on a 64 px anchor decodes to 1.02 px, not 0.16 px",
    ),
    Difference(
        RESIZE_FIELD,
        "opencv",
        "pil",
        "OpenCV bilinear resize without antialiasing; `dataloader.image_scale` is (w, h)",
        "PIL antialiases when shrinking (1024→800: up to 113 grey levels, scores moved by up "
        "to 0.19)",
    ),
    Difference(
        "model.backbone.init",
        "xavier_uniform",
        "c2_xavier",
        "Xavier-uniform FPN, P6 and P7 convs with zero bias",
        "detectron2's init has different bounds on the lateral and P6 convs",
    ),
    Difference(
        "dataloader.train.dataset.filter_mode",
        "original",
        "detectron2",
        "skip `ignore` boxes and boxes with w or h < 1, no area or outside the image; keep "
        "images whose boxes were all skipped as negatives; drop images with no annotation at "
        "all and images under 16 px",
        "detectron2 drops every image left without boxes",
    ),
    Difference(
        None,
        None,
        None,
        "anchors of each cell reordered from MMDetection's ratio-major to detectron2's "
        "size-major order",
        "needed to run the original's trained heads",
    ),
)


def set_semantics(model, dataloader=None, semantics: str = "original") -> None:
    """
    Set every switch of :data:`DIFFERENCES` in a LazyConfig to the original's or detectron2's
    value. The model must be built from our components (the defaults of each are the
    original's); every :class:`SARResize` in the train/test mappers gets its ``backend``, and
    the training set's ``filter_mode`` follows when it has one.

    Args:
        model (DictConfig): the ``model`` LazyConfig node.
        dataloader (DictConfig or None): the ``dataloader`` node.
        semantics (str): "original" or "detectron2".
    """
    if semantics not in ("original", "detectron2"):
        raise ValueError(f"semantics must be 'original' or 'detectron2', got {semantics!r}")
    from sar_lora_dino.data.filtering import get_sardet_train_dicts
    from sar_lora_dino.data.transforms import SARResize

    for diff in DIFFERENCES:
        value = getattr(diff, semantics)
        if diff.field == RESIZE_FIELD:
            for split in ("train", "test"):
                for aug in _get(dataloader, split, "mapper", "augmentations") or []:
                    if _is_call_of(aug, SARResize):
                        aug["backend"] = value
        elif diff.field and diff.field.startswith("model."):
            *parents, leaf = diff.field.split(".")[1:]
            node = model
            for name in parents:
                node = node[name]
            node[leaf] = value
        elif diff.field:  # dataloader.train.dataset.filter_mode
            dataset = _get(dataloader, "train", "dataset")
            if _is_call_of(dataset, get_sardet_train_dicts):
                dataset["filter_mode"] = value


def _get(node, *names):
    for name in names:
        node = node.get(name) if hasattr(node, "get") else None
    return node


def _is_call_of(node, target):
    name = f"{target.__module__}.{target.__qualname__}"
    return hasattr(node, "get") and node.get("_target_") in (target, name)


def markdown_table() -> str:
    """The README's table of :data:`DIFFERENCES` (checked against the README by a test)."""
    rows = [
        "| # | switch: original (default) → detectron2 | what it changes | why it matters |",
        "| --- | --- | --- | --- |",
    ]
    for i, d in enumerate(DIFFERENCES, 1):
        switch = (
            f"`{d.field}`: `{d.original}` → `{d.detectron2}`" if d.field else "(converter only)"
        )
        rows.append(f"| {i} | {switch} | {d.changes} | {d.matters} |")
    return "\n".join(rows)
