"""Inference over files, folders and whole scenes: batching, tiling, merging and what is written."""

import glob
import logging
import os
import resource
import sys

import torch
from tqdm import tqdm

from sar_lora_dino.data.image_io import IMAGE_EXTENSIONS, read_image, to_format
from sar_lora_dino.data.scaling import apply_scaling
from sar_lora_dino.reporting.painter import paint_detections, save_png

from .merge import merge_detections
from .outputs import unique_name, write_geojson, write_json
from .scene import SceneReader, geo_reference, tile_windows

__all__ = ["expand_inputs", "run_inference"]

logger = logging.getLogger(__name__)


def expand_inputs(specs, in_folders=lambda name: name.lower().endswith(IMAGE_EXTENSIONS)):
    """
    Returns:
        tuple[list[str], list[str]]: the files of ``specs`` (files, globs, folders searched
        recursively for the names ``in_folders`` accepts, by default :data:`IMAGE_EXTENSIONS`)
        in order without repeats, and the specs that matched nothing.
    """
    files, unmatched = [], []
    for spec in specs:
        found = []
        for match in sorted(glob.glob(spec, recursive=True)) or [spec]:
            if os.path.isdir(match):
                found += sorted(
                    os.path.join(d, f)
                    for d, _, names in os.walk(match)
                    for f in names
                    if in_folders(f)
                )
            elif os.path.isfile(match):
                found.append(match)
        if not found:
            unmatched.append(spec)
        files += [f for f in found if f not in files]
    return files, unmatched


def _rss_mib():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return None


class _Input:
    """One input's state while its image or tiles are in flight."""

    def __init__(self, index, path):
        self.index, self.path = index, path
        self.reader = self.image = self.bounds = None
        self.expected = None  # number of forward-pass items, known once fully queued
        self.parts, self.error, self.rss = [], None, []


def _items(inputs, predictor, tile, overlap, bar):
    """Yield (input, (x0, y0), image) per image or tile, reading tiles one at a time."""
    for item in inputs:
        try:
            if tile is None:
                item.image = read_image(item.path, "RGB", predictor.scaling)
                item.expected = 1
                yield item, (0, 0), item.image
                continue
            item.reader = SceneReader(item.path)
            item.bounds = item.reader.bounds(predictor.scaling)
            windows = tile_windows(item.reader.width, item.reader.height, tile, overlap)
            bar.reset(total=len(windows))
            bar.set_description(os.path.basename(item.path))
            for i, (x0, y0, w, h) in enumerate(windows):
                window = item.reader.read(x0, y0, w, h)
                window = apply_scaling(window, predictor.scaling, item.bounds, item.path)
                if i == len(windows) - 1:
                    item.expected = len(windows)
                yield item, (x0, y0), to_format(window, "RGB")
        except (OSError, ValueError) as e:
            item.error = f"{type(e).__name__}: {e}"
            item.expected = len(item.parts)
            yield item, None, None


def _picture(item, boxes, scores, classes, metadata, max_side, scaling):
    if item.reader is None:
        scale = min(1.0, max_side / max(item.image.shape[:2]))
        return paint_detections(item.image, boxes, classes, scores, metadata, scale=scale)
    overview, step = item.reader.overview(max_side)
    overview = to_format(apply_scaling(overview, scaling, item.bounds, item.path), "RGB")
    return paint_detections(overview, boxes / step, classes, scores, metadata)


def run_inference(
    predictor,
    files,
    output_dir,
    tile=None,
    overlap=0,
    batch=1,
    merge="greedy_nmm",
    match_metric="ios",
    match_threshold=0.5,
    picture_size=2000,
):
    """
    Run a predictor over image files and write, into ``output_dir``: a picture per input
    (``<name>.png``; for tiled scenes a downsampled overview of the whole scene),
    ``coco_instances_results.json`` (every detection of the run, ``image_id`` = the input's
    id in ``inputs.json``), ``inputs.json`` (inputs, sizes, scaling, failures, weights) and, for
    georeferenced inputs when rasterio is installed, ``<name>.geojson`` in the product's CRS.
    Every file is written atomically. A file that cannot be read is reported and skipped.
    Progress bars show when stderr is a terminal.

    Args:
        predictor (Predictor): the detector.
        tile (int or None): cut every input into ``tile`` x ``tile`` windows (see
            :func:`tile_windows`) read one at a time, each run at the model's input size.
        overlap (int): pixels shared by neighbouring windows.
        batch (int): images or windows per forward pass.
        merge, match_metric, match_threshold: how detections of overlapping windows are merged
            (see :func:`merge_detections`); only used when tiling.
        picture_size (int): longest side of the pictures.

    Returns:
        dict: the run manifest written as ``inputs.json``.
    """
    progress = sys.stderr.isatty()
    os.makedirs(output_dir, exist_ok=True)
    meta = predictor.metadata
    names = list(meta.get("thing_classes", []))
    to_dataset = {v: k for k, v in meta.get("thing_dataset_id_to_contiguous_id", {}).items()}
    inputs = [_Input(i, path) for i, path in enumerate(files)]
    taken, results, images, failed = set(), [], [], []
    bar = tqdm(total=len(inputs), desc="inputs", unit="input", disable=not progress)
    tiles_bar = tqdm(total=0, unit="tile", leave=False, disable=not progress or tile is None)

    def finish(item):
        reader, image = item.reader, item.image
        try:
            if item.error is not None:
                raise RuntimeError(item.error)
            # every input that read without error has its parts: one per image or window
            boxes, scores, classes = (torch.cat(p) for p in zip(*item.parts))
            classes = classes.long()
            if tile is not None and len(item.parts) > 1:
                boxes, scores, classes = merge_detections(
                    boxes, scores, classes, merge, match_metric, match_threshold
                )
            height, width = (reader.height, reader.width) if reader else image.shape[:2]
            name = unique_name(item.path, taken)
            save_png(
                os.path.join(output_dir, f"{name}.png"),
                _picture(item, boxes, scores, classes, meta, picture_size, predictor.scaling),
            )
            geo = reader.geo if reader else geo_reference(item.path)
            if geo is not None:
                write_geojson(
                    os.path.join(output_dir, f"{name}.geojson"), geo, boxes, scores, classes, names
                )
            for (x0, y0, x1, y1), s, c in zip(boxes.tolist(), scores.tolist(), classes.tolist()):
                results.append(
                    {
                        "image_id": item.index,
                        "category_id": to_dataset.get(c, c),
                        "bbox": [round(v, 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                        "score": round(s, 5),
                    }
                )
            rss = [r for r in item.rss if r is not None]
            images.append(
                {
                    "id": item.index,
                    "file_name": os.path.abspath(item.path),
                    "width": int(width),
                    "height": int(height),
                    "picture": f"{name}.png",
                    "detections": len(scores),
                    "tiles": len(item.parts) if tile is not None else None,
                    "scaling_bounds": list(item.bounds) if item.bounds else None,
                    "crs": geo[0].to_string() if geo else None,
                    "rss_mib_min_max": [round(min(rss)), round(max(rss))] if rss else None,
                }
            )
        except (OSError, ValueError, RuntimeError) as e:
            message = str(e) if item.error is not None else f"{type(e).__name__}: {e}"
            logger.error(f"Skipped {item.path}: {message}")
            failed.append({"file_name": os.path.abspath(item.path), "error": message})
        finally:
            if reader is not None:
                reader.close()
            item.reader = item.image = None
            item.parts = []
            bar.update(1)

    def run(queue):
        outputs = predictor([image for _, _, image in queue])
        for (item, (x0, y0), _), (boxes, scores, classes) in zip(queue, outputs):
            item.parts.append((boxes + boxes.new_tensor([x0, y0, x0, y0]), scores, classes))
            item.rss.append(_rss_mib())
        tiles_bar.update(len(queue))
        for item in {id(i): i for i, _, _ in queue}.values():
            if item.expected is not None and len(item.parts) >= item.expected:
                finish(item)

    queue = []
    for item, offset, image in _items(inputs, predictor, tile, overlap, tiles_bar):
        if offset is None:  # reading failed: drop its queued windows
            queue = [q for q in queue if q[0] is not item]
            finish(item)
            continue
        queue.append((item, offset, image))
        if len(queue) >= batch:
            run(queue)
            queue = []
    if queue:
        run(queue)
    bar.close()
    tiles_bar.close()

    manifest = {
        "weights": predictor.weights,
        "scaling": predictor.scaling,
        "input_size": predictor.input_size,
        "tile": tile,
        "overlap": overlap if tile is not None else None,
        "merge": {"method": merge, "metric": match_metric, "threshold": match_threshold}
        if tile is not None
        else None,
        "categories": [{"id": to_dataset.get(i, i), "name": n} for i, n in enumerate(names)],
        "images": sorted(images, key=lambda r: r["id"]),
        "failed": failed,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    write_json(os.path.join(output_dir, "coco_instances_results.json"), results)
    write_json(os.path.join(output_dir, "inputs.json"), manifest)
    return manifest
