"""The one painter of boxes on images: detectron2's Visualizer with the dataset's class colours."""

import io
import json
import math
from collections import defaultdict

import numpy as np
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
    Args:
        metadata (Metadata or None): a dataset's metadata; ``thing_colors`` (RGB 0..255) are used
            when present, matplotlib's tab10 colours otherwise.
        num_classes (int): how many colours are needed.

    Returns:
        list[tuple[float, float, float]]: RGB in 0..1 per class, exactly (no jitter).
    """
    colors = list(metadata.get("thing_colors", [])) if metadata is not None else []
    if len(colors) >= num_classes:
        return [tuple(c / 255.0 for c in colors[i]) for i in range(num_classes)]
    from matplotlib import colormaps

    tab10 = colormaps["tab10"]
    return [tuple(tab10(i % 10)[:3]) for i in range(num_classes)]


def to_display(image):
    """
    Args:
        image (np.ndarray): HxW or HxWxC, uint8 or float in 0..255 (what the reader returns).

    Returns:
        np.ndarray: HxWx3 uint8 RGB.
    """
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.dtype != np.uint8:
        image = np.clip(np.nan_to_num(image), 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(image[:, :, :3])


def paint_detections(
    image, boxes, classes, scores=None, metadata=None, truth_boxes=None, scale=1.0, font_size=None
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
        font_size (float or None): label size in output pixels; detectron2 picks one if None.

    Returns:
        np.ndarray: HxWx3 uint8 RGB.
    """
    names = list(metadata.get("thing_classes", [])) if metadata is not None else []
    classes = [int(c) for c in np.asarray(classes).reshape(-1)]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    vis = Visualizer(to_display(image), metadata, scale=scale)
    if font_size is not None:
        vis._default_font_size = font_size
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
    """
    Write an RGB uint8 array as a PNG, atomically.

    Args:
        path (str): destination.
        image (np.ndarray): HxWx3 uint8 RGB.

    Returns:
        str: ``path``.
    """
    buffer = io.BytesIO()
    Image.fromarray(to_display(image)).save(buffer, format="PNG")
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path


def _grid(pictures, cols, tile):
    rows = max(1, math.ceil(len(pictures) / cols))
    grid = np.full((rows * tile, min(cols, max(len(pictures), 1)) * tile, 3), 255, np.uint8)
    for i, p in enumerate(pictures):
        r, c = divmod(i, cols)
        p = p[:tile, :tile]
        grid[r * tile : r * tile + p.shape[0], c * tile : c * tile + p.shape[1]] = p
    return grid


def _xyxy(annotations):
    return [BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations]


def draw_contact_sheet(dataset_name, output_file, num_images=6, cols=3, tile=320, seed=0):
    """
    Draw ``num_images`` images of a registered dataset with their boxes and class names into
    one PNG grid; images with boxes are preferred.

    Args:
        dataset_name (str): a registered dataset, e.g. "sardet100k_val".
        output_file (str): path of the PNG to write.
        num_images (int): how many images to show.
        cols (int): images per row.
        tile (int): side of each square cell in pixels (images are scaled to fit).
        seed (int): which images are picked.

    Returns:
        np.ndarray: the sheet as an RGB uint8 array.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog

    dicts = DatasetCatalog.get(dataset_name)
    metadata = MetadataCatalog.get(dataset_name)
    rng = np.random.default_rng(seed)
    with_boxes = [d for d in dicts if d.get("annotations")]
    pool = with_boxes if len(with_boxes) >= num_images else dicts
    picks = [pool[i] for i in sorted(rng.choice(len(pool), min(num_images, len(pool)), False))]
    pictures = []
    for d in picks:
        image = read_image(d["file_name"], "RGB")
        anns = d.get("annotations", [])
        pictures.append(
            paint_detections(
                image,
                _xyxy(anns),
                [a["category_id"] for a in anns],
                metadata=metadata,
                scale=tile / max(image.shape[:2]),
            )
        )
    sheet = _grid(pictures, cols, tile)
    save_png(output_file, sheet)
    return sheet


def paint_predictions(
    predictions_file, dataset_name, output_file, num_images=6, score_thresh=0.3, cols=3, tile=320
):
    """
    Paint the predictions of a COCO evaluation (``coco_instances_results.json``) on the first
    images of a registered dataset: ground truth in thin white, predictions in class colours with
    the class name and score. Writes one PNG grid.

    Args:
        predictions_file (str): COCO results JSON written by :class:`COCOEvaluator`.
        dataset_name (str): registered dataset the predictions were made on.
        output_file (str): PNG to write.
        num_images (int): images in the grid.
        score_thresh (float): draw predictions at or above this score.
        cols (int): grid columns.
        tile (int): side of one grid cell in pixels.

    Returns:
        str: ``output_file``.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog

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
        image = read_image(r["file_name"], "RGB")
        preds = by_image.get(r["image_id"], [])
        boxes = [BoxMode.convert(p["bbox"], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) for p in preds]
        pictures.append(
            paint_detections(
                image,
                boxes,
                [id_map.get(p["category_id"], p["category_id"]) for p in preds],
                scores=[p["score"] for p in preds],
                metadata=metadata,
                truth_boxes=_xyxy(r.get("annotations", [])),
                scale=tile / max(image.shape[:2]),
            )
        )
    save_png(output_file, _grid(pictures, cols, tile))
    return output_file
