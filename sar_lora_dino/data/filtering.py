"""Training-set filtering of SARDet-100K records, as in the original or as in detectron2."""

import itertools
import logging

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.build import get_detection_dataset_dicts, print_instances_class_histogram

__all__ = ["get_sardet_train_dicts"]

logger = logging.getLogger(__name__)

# The original drops images whose shorter side is under this many pixels.
MIN_IMAGE_SIZE = 16


def get_sardet_train_dicts(names, filter_mode="original"):
    """
    Training dicts (``dataloader.train.dataset``) of datasets registered by
    :func:`register_sardet100k`. The original's box rules apply at load time; ``iscrowd`` boxes
    stay, and detectron2's ``DatasetMapper`` removes them from the training instances.

    Args:
        filter_mode (str): "original": drop images with no annotation at all in the JSON and
            images whose shorter side is under 16 px; an image whose annotations were all
            skipped stays as an all-negative sample. "detectron2":
            ``get_detection_dataset_dicts(names, filter_empty=True)``, which drops every image
            left without a non-crowd instance.
    """
    if filter_mode == "detectron2":
        return get_detection_dataset_dicts(names, filter_empty=True)
    if filter_mode != "original":
        raise ValueError(f"filter_mode must be 'original' or 'detectron2', got '{filter_mode}'.")

    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("get_sardet_train_dicts() needs at least one dataset name.")
    dicts = list(itertools.chain.from_iterable(DatasetCatalog.get(n) for n in names))
    if dicts and "num_json_annotations" not in dicts[0]:
        raise KeyError(
            f"Records of {names} have no 'num_json_annotations' field, so images without any "
            "annotation cannot be told from images whose boxes were all skipped. Register the "
            "dataset with sar_lora_dino.data.register_sardet100k, or use "
            "filter_mode='detectron2'."
        )
    no_annotation = small = 0
    kept = []
    for d in dicts:
        if d["num_json_annotations"] == 0:
            no_annotation += 1
        elif min(d["width"], d["height"]) < MIN_IMAGE_SIZE:
            small += 1
        else:
            kept.append(d)
    negatives = sum(1 for d in kept if not any(a["iscrowd"] == 0 for a in d["annotations"]))
    logger.info(
        f"Training images of {names} (filter_mode='original'): kept {len(kept)} of {len(dicts)};"
        f" dropped {no_annotation} without any annotation in the JSON and {small} under "
        f"{MIN_IMAGE_SIZE} px; {negatives} kept images have no usable box (all-negative)."
    )
    if not kept:
        raise ValueError(f"No training image left in {names} after filtering.")
    thing_classes = MetadataCatalog.get(names[0]).get("thing_classes")
    if thing_classes is not None:
        print_instances_class_histogram(kept, thing_classes)
    return kept
