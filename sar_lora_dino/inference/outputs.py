"""What an inference run writes: COCO results, GeoJSON in the product's CRS, the run manifest."""

import json
import os
import warnings

from sar_lora_dino.utils.io import atomic_write

from .scene import has_rasterio

__all__ = ["coco_results", "geo_reference", "write_geojson", "write_json"]


def write_json(path, obj):
    """
    Args:
        path (str): destination, written atomically.
        obj: anything ``json`` can write.
    """
    atomic_write(path, lambda f: json.dump(obj, f, indent=1), mode="w")


def coco_results(image_id, boxes, scores, classes, category_ids):
    """
    Args:
        image_id (int): id of the input in the run manifest.
        boxes (Tensor): Nx4 XYXY in the input's pixels.
        scores (Tensor): N scores.
        classes (Tensor): N contiguous class indices.
        category_ids (list[int]): dataset category id per contiguous index.

    Returns:
        list[dict]: COCO results (``bbox`` as [x, y, w, h]), as ``COCOEvaluator`` writes them.
    """
    out = []
    for box, score, c in zip(boxes.tolist(), scores.tolist(), classes.tolist()):
        x0, y0, x1, y1 = box
        out.append(
            {
                "image_id": image_id,
                "category_id": category_ids[c] if c < len(category_ids) else c,
                "bbox": [round(v, 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                "score": round(score, 5),
            }
        )
    return out


def geo_reference(path):
    """
    Args:
        path (str): an input file.

    Returns:
        tuple or None: (crs, affine transform) of a georeferenced TIFF when rasterio is
        installed, else None.
    """
    if not has_rasterio() or not path.lower().endswith((".tif", ".tiff")):
        return None
    import rasterio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                return (ds.crs, ds.transform) if ds.crs is not None else None
    except Exception:  # unreadable by GDAL: the reader reports the file; no geography then
        return None


def write_geojson(path, geo, boxes, scores, classes, class_names):
    """
    Write the detections of one georeferenced input as polygons in the product's CRS.

    Args:
        path (str): destination ``.geojson``.
        geo (tuple): (crs, transform) from :func:`geo_reference`.
        boxes (Tensor): Nx4 XYXY in scene pixels.
        scores, classes (Tensor): N scores and class indices.
        class_names (list[str]): class name per index.
    """
    crs, transform = geo
    features = []
    for box, score, c in zip(boxes.tolist(), scores.tolist(), classes.tolist()):
        x0, y0, x1, y1 = box
        corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))
        t = transform  # pixel (column, row) -> map (x, y), an affine map
        ring = [(t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f) for x, y in corners]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
                "properties": {
                    "class": class_names[c] if c < len(class_names) else str(c),
                    "score": round(score, 5),
                    "bbox_pixels": [round(v, 2) for v in box],
                },
            }
        )
    collection = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": crs.to_string()}},
        "features": features,
    }
    write_json(path, collection)


def unique_name(path, taken):
    """
    Args:
        path (str): an input file.
        taken (set[str]): names already used in this run (updated).

    Returns:
        str: the file's stem, with a number added if another input already had it.
    """
    stem = os.path.splitext(os.path.basename(path))[0]
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}_{n}"
    taken.add(name)
    return name
