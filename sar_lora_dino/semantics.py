"""One switch for all fidelity items: the original's (MMDetection) semantics or detectron2's."""

from typing import Dict, Tuple

__all__ = ["SEMANTICS", "set_semantics"]

# config field (relative to `model`) -> (the original's value, detectron2's value)
SEMANTICS: Dict[str, Tuple[object, object]] = {
    "backbone.top_block.relu_before_p7": (False, True),
    "backbone.init": ("xavier_uniform", "c2_xavier"),
    "loss_normalizer": ("batch", "ema"),
    "anchor_matcher.low_quality_assign": ("last_gt", "argmax"),
    "clip_before_nms": (True, False),
    "drop_empty_before_nms": (True, False),
    "box2box_transform.two_sided_clamp": (True, False),
}
# SARResize.backend in every data loader's augmentations
RESIZE_BACKEND = ("opencv", "pil")


def set_semantics(model, dataloader=None, semantics: str = "original") -> None:
    """
    Set every fidelity switch of a LazyConfig model (and the resize of its data loaders).

    The model must be built from our components (``SARRetinaNet``, ``SARFPN``,
    ``SARLastLevelP6P7``, ``SARMatcher``, ``SARBox2BoxTransform``); augmentations that are
    :class:`SARResize` get their ``backend`` set, and the training set's ``filter_mode``
    (item 9) follows too.

    Args:
        model (DictConfig): the ``model`` LazyConfig node.
        dataloader (DictConfig or None): the ``dataloader`` node; its ``train`` and ``test``
            mappers' augmentations are visited.
        semantics (str): "original" or "detectron2".
    """
    if semantics not in ("original", "detectron2"):
        raise ValueError(f"semantics must be 'original' or 'detectron2', got {semantics!r}")
    pick = 0 if semantics == "original" else 1
    for path, values in SEMANTICS.items():
        *parents, leaf = path.split(".")
        node = model
        for name in parents:
            node = node[name]
        node[leaf] = values[pick]
    if dataloader is None:
        return
    from sar_lora_dino.data.transforms import SARResize

    train = dataloader.get("train") if hasattr(dataloader, "get") else None
    dataset = train.get("dataset") if train is not None else None
    if dataset is not None and "filter_mode" in dataset:
        dataset["filter_mode"] = semantics  # item 9: "original" / "detectron2"
    for split in ("train", "test"):
        loader = dataloader.get(split) if hasattr(dataloader, "get") else None
        mapper = loader.get("mapper") if loader is not None else None
        for aug in (mapper.get("augmentations") or []) if mapper is not None else []:
            if aug.get("_target_") in (SARResize, "sar_lora_dino.data.transforms.SARResize"):
                aug["backend"] = RESIZE_BACKEND[pick]
