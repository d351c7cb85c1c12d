"""Pictures of a run: loss and AP curves from metrics.json, predictions painted on images."""

import json
import logging
import math
import os
from collections import defaultdict

import cv2
import numpy as np

from sar_lora_dino.utils.io import atomic_write

__all__ = ["read_metrics", "plot_training_curves", "paint_predictions"]

logger = logging.getLogger(__name__)

LOSS_KEYS = ("total_loss", "loss_cls", "loss_box_reg")
AP_KEYS = ("bbox/AP", "bbox/AP50")
# BGR colours for classes 0..5, then cycled.
_COLORS = [
    (60, 180, 255),
    (80, 220, 80),
    (255, 160, 60),
    (200, 80, 255),
    (60, 60, 240),
    (0, 220, 220),
]


def read_metrics(metrics_file):
    """
    Read detectron2's ``metrics.json`` (one JSON object per line). A line cut short by a killed
    run is skipped, and when a resumed run wrote an iteration again the later record wins.

    Args:
        metrics_file (str): path of ``metrics.json``.

    Returns:
        list[dict]: records sorted by ``iteration``.
    """
    by_iter = {}
    with open(metrics_file) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "iteration" in record:
                by_iter.setdefault(record["iteration"], {}).update(record)
    return [by_iter[i] for i in sorted(by_iter)]


def plot_training_curves(metrics_file, output_file, title=None):
    """
    Plot the training losses and the validation AP/AP50 against the iteration, as a PNG.

    Args:
        metrics_file (str): ``metrics.json`` of a run.
        output_file (str): PNG to write.
        title (str or None): figure title.

    Returns:
        str: ``output_file``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_file)
    series = defaultdict(list)
    for r in records:
        for key in LOSS_KEYS + AP_KEYS:
            value = r.get(key)
            if value is not None and math.isfinite(value):
                series[key].append((r["iteration"], value))
    fig, (ax_loss, ax_ap) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    for key in LOSS_KEYS:
        if series[key]:
            x, y = zip(*series[key])
            ax_loss.plot(x, y, label=key, linewidth=2 if key == "total_loss" else 1)
    ax_loss.set_ylabel("training loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(loc="upper right")
    for key in AP_KEYS:
        if series[key]:
            x, y = zip(*series[key])
            ax_ap.plot(x, y, marker="o", label=f"val {key.split('/')[-1]}")
            ax_ap.annotate(
                f"{y[-1]:.1f}", (x[-1], y[-1]), textcoords="offset points", xytext=(4, 4)
            )
    if not any(series[k] for k in AP_KEYS):
        evaluated = any(k in r for r in records for k in AP_KEYS)  # AP NaN: no detection at all
        text = "0 detections above the threshold" if evaluated else "no evaluation yet"
        ax_ap.text(0.5, 0.5, text, ha="center", transform=ax_ap.transAxes)
    ax_ap.set_ylabel("COCO bbox AP (%)")
    ax_ap.set_xlabel("iteration")
    ax_ap.set_ylim(bottom=0)
    ax_ap.grid(alpha=0.3)
    ax_ap.legend(loc="lower right")
    fig.suptitle(title or os.path.dirname(os.path.abspath(metrics_file)))
    fig.tight_layout()
    atomic_write(output_file, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return output_file


def _label(img, text, x, y, color):
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    y = max(y, h + 2)
    cv2.rectangle(img, (x, y - h - 3), (x + w + 2, y), color, -1)
    cv2.putText(img, text, (x + 1, y - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)


def _tile(record, predictions, classes, id_map, score_thresh, tile):
    img = cv2.imread(record["file_name"], cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {record['file_name']}")
    scale = tile / max(img.shape[:2])
    img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)))
    for ann in record.get("annotations", []):
        x0, y0, x1, y1 = (np.asarray(_xyxy(ann)) * scale).round().astype(int)
        cv2.rectangle(img, (x0, y0), (x1, y1), (255, 255, 255), 1, cv2.LINE_AA)
    shown = 0
    for p in sorted(predictions, key=lambda p: -p["score"]):
        if p["score"] < score_thresh:
            break
        c = id_map.get(p["category_id"], p["category_id"])
        color = _COLORS[c % len(_COLORS)]
        x, y, w, h = (np.asarray(p["bbox"]) * scale).tolist()
        cv2.rectangle(img, (round(x), round(y)), (round(x + w), round(y + h)), color, 2)
        name = classes[c] if 0 <= c < len(classes) else str(c)
        _label(img, f"{name} {p['score']:.2f}", round(x), round(y), color)
        shown += 1
    canvas = np.zeros((tile, tile, 3), np.uint8)
    canvas[: img.shape[0], : img.shape[1]] = img
    caption = f"{os.path.basename(record['file_name'])}: {shown} predicted, truth in white"
    cv2.putText(
        canvas,
        caption,
        (4, tile - 6),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.4,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return canvas


def _xyxy(ann):
    from detectron2.structures import BoxMode

    return BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS)


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
        by_image[p["image_id"]].append(p)
    metadata = MetadataCatalog.get(dataset_name)
    classes = list(metadata.get("thing_classes", []))
    id_map = dict(metadata.get("thing_dataset_id_to_contiguous_id", {}))
    records = DatasetCatalog.get(dataset_name)[:num_images]
    if not records:
        raise ValueError(f"dataset {dataset_name!r} has no images")
    tiles = [
        _tile(r, by_image.get(r["image_id"], []), classes, id_map, score_thresh, tile)
        for r in records
    ]
    rows = math.ceil(len(tiles) / cols)
    grid = np.zeros((rows * tile, min(cols, len(tiles)) * tile, 3), np.uint8)
    for i, t in enumerate(tiles):
        y, x = (i // cols) * tile, (i % cols) * tile
        grid[y : y + tile, x : x + tile] = t
    ok, png = cv2.imencode(".png", grid)
    if not ok:
        raise RuntimeError(f"could not encode {output_file}")
    atomic_write(output_file, lambda f: f.write(png.tobytes()))
    return output_file
