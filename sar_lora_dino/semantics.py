"""Where the original's (MMDetection) RetinaNet differs from detectron2's: one table, one switch."""

from typing import Any, NamedTuple

__all__ = ["Difference", "DIFFERENCES", "RESIZE_FIELD", "set_semantics"]

# The resize switch is the ``backend`` of every ResizeWH in the train and test mappers.
RESIZE_FIELD = "dataloader.{train,test}.mapper.augmentations.0.backend"


class Difference(NamedTuple):
    """A config field where the original computes differently from detectron2 (README table)."""

    field: str  # path from the config root
    original: Any  # reproduces the original; our components' default
    detectron2: Any  # reproduces stock detectron2


# Items 1-9 of the README's "Fidelity" table, in its order (item 10 is the converter's).
DIFFERENCES = (
    Difference("model.backbone.top_block.relu_before_p7", False, True),
    Difference("model.loss_normalizer", "batch", "ema"),
    Difference("model.anchor_matcher.low_quality_assign", "last_gt", "argmax"),
    Difference("model.clip_before_nms", True, False),
    Difference("model.drop_empty_before_nms", True, False),
    Difference("model.box2box_transform.two_sided_clamp", True, False),
    Difference(RESIZE_FIELD, "opencv", "pil"),
    Difference("model.backbone.init", "xavier_uniform", "c2_xavier"),
    Difference("dataloader.train.dataset.filter_mode", "original", "detectron2"),
)


def set_semantics(model, dataloader=None, semantics: str = "original") -> None:
    """
    Set every switch of :data:`DIFFERENCES` in a LazyConfig's ``model`` and ``dataloader``
    nodes to the original's or detectron2's value (``semantics``). The model must be built from
    our components (the defaults of each are the original's); every :class:`ResizeWH` in the
    train/test mappers gets its ``backend``, and the training set's ``filter_mode`` follows
    when it has one.
    """
    if semantics not in ("original", "detectron2"):
        raise ValueError(f"semantics must be 'original' or 'detectron2', got {semantics!r}")
    from sar_lora_dino.data.filtering import get_sardet_train_dicts
    from sar_lora_dino.data.transforms import ResizeWH

    for diff in DIFFERENCES:
        value = getattr(diff, semantics)
        if diff.field == RESIZE_FIELD:
            for split in ("train", "test"):
                for aug in _get(dataloader, split, "mapper", "augmentations") or []:
                    if _is_call_of(aug, ResizeWH):
                        aug["backend"] = value
        elif diff.field.startswith("model."):
            *parents, leaf = diff.field.split(".")[1:]
            node = model
            for name in parents:
                node = node[name]
            node[leaf] = value
        else:  # dataloader.train.dataset.filter_mode
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
