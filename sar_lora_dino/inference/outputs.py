"""What an inference run writes besides COCO results: GeoJSON in the product's CRS, the manifest."""

import json
import os

from sar_lora_dino.utils.io import atomic_write

__all__ = ["unique_name", "write_geojson", "write_json"]


def write_json(path, obj):
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=1), mode="w")


def write_geojson(path, geo, boxes, scores, classes, class_names):
    """
    Write the detections of one georeferenced input as polygons in the product's CRS.

    Args:
        path (str): destination ``.geojson``.
        geo (tuple): (crs, affine pixel-to-map transform), as rasterio gives them.
        boxes (Tensor): Nx4 XYXY in scene pixels.
        scores, classes (Tensor): N scores and class indices.
        class_names (list[str]): class name per index.
    """
    crs, t = geo
    features = []
    for box, score, c in zip(boxes.tolist(), scores.tolist(), classes.tolist()):
        x0, y0, x1, y1 = box
        corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))
        ring = [[t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f] for x, y in corners]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
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
    """The file's stem, numbered if it is in ``taken`` (the run's names so far, updated)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}_{n}"
    taken.add(name)
    return name
