"""The one painter of boxes on images: detectron2's Visualizer with the dataset's class colours."""

import json
import math
from collections import defaultdict

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from detectron2.utils.visualizer import Visualizer
from PIL import Image

from sar_lora_dino.data.image_io import read_image
from sar_lora_dino.utils.io import atomic_write

__all__ = [
    "class_colors",
    "draw_contact_sheet",
    "paint_detections",
    "paint_predictions",
    "save_png",
    "to_display",
]

_WHITE = (1.0, 1.0, 1.0)


def class_colors(metadata, num_classes):
    """
    Returns:
        list[tuple[float, float, float]]: RGB in 0..1 per class, exactly (no jitter): the
        metadata's ``thing_colors`` when it has enough, matplotlib's tab10 otherwise.
    """
    colors = list(metadata.get("thing_colors", [])) if metadata is not None else []
    if len(colors) >= num_classes:
        return [tuple(c / 255.0 for c in colors[i]) for i in range(num_classes)]
    from matplotlib import colormaps

    tab10 = colormaps["tab10"]
    return [tuple(tab10(i % 10)[:3]) for i in range(num_classes)]


def to_display(image):
    """HxW or HxWxC, uint8 or float in 0..255 (what the reader returns) -> HxWx3 uint8 RGB."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.dtype != np.uint8:
        image = np.clip(np.nan_to_num(image), 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(image[:, :, :3])


def paint_detections(
    image, boxes, classes, scores=None, metadata=None, truth_boxes=None, scale=1.0
):
    """
    Paint boxes with class names (and scores) in the class colours of the dataset metadata.

    Args:
        image (np.ndarray): the picture, RGB (see :func:`to_display`).
        boxes (array-like): Nx4 XYXY boxes in ``image`` pixels.
        classes (array-like): N class indices.
        scores (array-like or None): N scores, shown after the class name.
        metadata (Metadata or None): ``thing_classes`` and ``thing_colors``.
        truth_boxes (array-like or None): Mx4 XYXY boxes drawn thin in white, unlabelled.
        scale (float): output size relative to ``image``.

    Returns:
        np.ndarray: HxWx3 uint8 RGB.
    """
    names = list(metadata.get("thing_classes", [])) if metadata is not None else []
    classes = [int(c) for c in np.asarray(classes).reshape(-1)]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    vis = Visualizer(to_display(image), metadata, scale=scale)
    if truth_boxes is not None and len(truth_boxes):
        truth = np.asarray(truth_boxes, dtype=np.float64).reshape(-1, 4)
        vis.overlay_instances(boxes=truth, assigned_colors=[_WHITE] * len(truth), alpha=1.0)
    if len(boxes):
        colors = class_colors(metadata, max(max(classes) + 1, len(names)))
        labels = [names[c] if 0 <= c < len(names) else str(c) for c in classes]
        if scores is not None:
            labels = [f"{n} {s:.2f}" for n, s in zip(labels, np.asarray(scores).reshape(-1))]
        vis.overlay_instances(
            boxes=boxes, labels=labels, assigned_colors=[colors[c] for c in classes], alpha=0.8
        )
    return vis.get_output().get_image()


def save_png(path, image):
    """Write an HxWx3 uint8 RGB image as a PNG, atomically."""
    atomic_write(path, lambda f: Image.fromarray(image).save(f, format="PNG"))


def _save_grid(output_file, pictures, cols, tile):
    """Write ``pictures`` as a PNG grid of ``cols`` columns of ``tile`` px cells; return it."""
    rows = max(1, math.ceil(len(pictures) / cols))
    grid = np.full((rows * tile, min(cols, max(len(pictures), 1)) * tile, 3), 255, np.uint8)
    for i, p in enumerate(pictures):
        r, c = divmod(i, cols)
        p = p[:tile, :tile]
        grid[r * tile : r * tile + p.shape[0], c * tile : c * tile + p.shape[1]] = p
    save_png(output_file, grid)
    return grid


def _paint_record(record, tile, **kwargs):
    """A dataset record's image, scaled to fit a ``tile`` px cell, painted."""
    image = read_image(record["file_name"], "RGB")
    return paint_detections(image, scale=tile / max(image.shape[:2]), **kwargs)


def _xyxy(annotations):
    return [BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations]


def draw_contact_sheet(dataset_name, output_file, num_images=6, cols=3, tile=320, seed=0):
    """
    Draw ``num_images`` images of a registered dataset (picked by ``seed``, images with boxes
    preferred) with their boxes and class names into one PNG grid of ``cols`` columns of
    ``tile`` px square cells.

    Returns:
        np.ndarray: the sheet as an RGB uint8 array.
    """
    dicts = DatasetCatalog.get(dataset_name)
    metadata = MetadataCatalog.get(dataset_name)
    rng = np.random.default_rng(seed)
    with_boxes = [d for d in dicts if d.get("annotations")]
    pool = with_boxes if len(with_boxes) >= num_images else dicts
    picks = [pool[i] for i in sorted(rng.choice(len(pool), min(num_images, len(pool)), False))]
    pictures = []
    for d in picks:
        anns = d.get("annotations", [])
        classes = [a["category_id"] for a in anns]
        pictures.append(
            _paint_record(d, tile, boxes=_xyxy(anns), classes=classes, metadata=metadata)
        )
    return _save_grid(output_file, pictures, cols, tile)


def paint_predictions(
    predictions_file, dataset_name, output_file, num_images=6, score_thresh=0.3, cols=3, tile=320
):
    """
    Paint the predictions of a COCO evaluation (``coco_instances_results.json``) on the first
    ``num_images`` images of the registered dataset they were made on: ground truth in thin
    white, predictions at or above ``score_thresh`` in class colours with the class name and
    score, in one PNG grid (as :func:`draw_contact_sheet`).

    Returns:
        str: ``output_file``.
    """
    with open(predictions_file) as f:
        predictions = json.load(f)
    by_image = defaultdict(list)
    for p in predictions:
        if p["score"] >= score_thresh:
            by_image[p["image_id"]].append(p)
    metadata = MetadataCatalog.get(dataset_name)
    id_map = dict(metadata.get("thing_dataset_id_to_contiguous_id", {}))
    records = DatasetCatalog.get(dataset_name)[:num_images]
    if not records:
        raise ValueError(f"dataset {dataset_name!r} has no images")
    pictures = []
    for r in records:
        preds = by_image.get(r["image_id"], [])
        boxes = [BoxMode.convert(p["bbox"], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) for p in preds]
        pictures.append(
            _paint_record(
                r,
                tile,
                boxes=boxes,
                classes=[id_map.get(p["category_id"], p["category_id"]) for p in preds],
                scores=[p["score"] for p in preds],
                metadata=metadata,
                truth_boxes=_xyxy(r.get("annotations", [])),
            )
        )
    _save_grid(output_file, pictures, cols, tile)
    return output_file
