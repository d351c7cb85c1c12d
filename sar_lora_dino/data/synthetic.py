"""A synthetic SAR detection set written in exactly the SARDet-100K layout and JSON shape."""

import json
import math
import os

import cv2
import numpy as np
from PIL import Image

from sar_lora_dino.utils.io import atomic_dir

from .sardet import SARDET100K_CATEGORIES

__all__ = ["make_synthetic_sardet", "render_sar_image", "render_sar_scene"]

# Sampling weights of the six classes (ships dominate, as in SARDet-100K).
_CLASS_WEIGHTS = np.array([0.3, 0.2, 0.15, 0.15, 0.1, 0.1])
_FORMATS = ("jpg", "png", "bmp")
# Reflectivities (linear intensity); targets are 10-50x brighter than the clutter.
_SEA, _LAND, _TARGET = (0.008, 0.02), (0.04, 0.1), (0.5, 1.0)
# The corners of a unit rectangle, scaled by (length / 2, width / 2) in _rect.
_CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def _rotate(points, angle, center):
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return np.asarray(points, dtype=np.float64) @ rot.T + np.asarray(center)


# The drawing calls take coordinates with 2 fractional bits (shift=2): pixel positions times 4.
def _px(point):
    return tuple(np.round(np.asarray(point) * 4).astype(int))


def _fill(canvas, polygon, value):
    cv2.fillPoly(canvas, [np.round(polygon * 4).astype(np.int32)], float(value), cv2.LINE_AA, 2)


def _line(canvas, start, end, value, thickness):
    cv2.line(canvas, _px(start), _px(end), value, thickness, cv2.LINE_AA, 2)


def _rect(length, width):
    return _CORNERS * [length / 2, width / 2]


def _scatterers(canvas, rng, points, value):
    """Bright point scatterers (3x3 px), the strongest returns of a target."""
    h, w = canvas.shape
    for x, y in points:
        xi, yi = int(round(x)), int(round(y))
        if 1 <= xi < w - 1 and 1 <= yi < h - 1:
            canvas[yi - 1 : yi + 2, xi - 1 : xi + 2] = np.maximum(
                canvas[yi - 1 : yi + 2, xi - 1 : xi + 2], value * rng.uniform(1.5, 3.0)
            )


def _ship(canvas, rng, k, center, angle):
    length, width = rng.uniform(26, 64) * k, rng.uniform(7, 13) * k
    l2, w2 = length / 2, width / 2
    hull = [[-l2, -w2], [length / 3, -w2], [l2, 0], [length / 3, w2], [-l2, w2]]
    hull = _rotate(hull, angle, center)
    # Wake: a dark turbulent trail astern and two faint Kelvin arms at +-19.5 degrees.
    stern = _rotate([[-l2, 0]], angle, center)[0]
    tail = _rotate([[-1.6 * length, 0]], angle, center)[0]
    _line(canvas, stern, tail, 0.002, max(1, int(width / 2)))
    for sign in (-1, 1):
        arm = _rotate([[-1.5 * length, sign * 1.5 * length * math.tan(0.34)]], angle, center)[0]
        _line(canvas, stern, arm, 0.08, max(1, int(k)))
    value = rng.uniform(*_TARGET)
    _fill(canvas, hull, value)
    axis = _rotate([[t * length / 2, 0] for t in rng.uniform(-0.8, 0.8, 5)], angle, center)
    _scatterers(canvas, rng, axis, value)
    return hull


def _aircraft(canvas, rng, k, center, angle):
    length = rng.uniform(30, 60) * k
    span = length * rng.uniform(0.8, 1.0)
    body = _rect(length, length / 7)
    wings = _rect(length / 6, span) + [length * 0.08, 0]
    tail = _rect(length / 10, span * 0.38) + [-length * 0.42, 0]
    value = rng.uniform(*_TARGET)
    parts = [_rotate(p, angle, center) for p in (body, wings, tail)]
    for p in parts:
        _fill(canvas, p, value * rng.uniform(0.6, 1.0))
    tips = [[length / 2, 0], [length * 0.08, span / 2], [length * 0.08, -span / 2]]
    _scatterers(canvas, rng, _rotate(tips, angle, center), value)
    return np.concatenate(parts)


def _car(canvas, rng, k, center, angle):
    length, width = rng.uniform(12, 18) * k, rng.uniform(7, 10) * k
    body = _rotate(_rect(length, width), angle, center)
    value = rng.uniform(*_TARGET)
    _fill(canvas, body, value * 0.7)
    pts = _rotate(rng.uniform(-0.4, 0.4, (4, 2)) * [length, width], angle, center)
    _scatterers(canvas, rng, pts, value)
    return body


def _tank(canvas, rng, k, center, angle):
    radius = rng.uniform(8, 14) * k
    c4, r4 = _px(center), int(radius * 4)
    value = rng.uniform(*_TARGET)
    cv2.circle(canvas, c4, r4, value * 0.35, -1, cv2.LINE_AA, 2)
    cv2.circle(canvas, c4, r4, value, max(1, int(2 * k)), cv2.LINE_AA, 2)
    # The near rim returns strongest (layover): a bright arc facing the sensor.
    arc = max(2, int(3 * k))
    cv2.ellipse(canvas, c4, (r4, r4), math.degrees(angle), 0, 120, value * 2.0, arc, cv2.LINE_AA, 2)
    return np.array([center - radius, center + radius])


def _bridge(canvas, rng, k, center, angle):
    length, width = rng.uniform(80, 150) * k, rng.uniform(6, 10) * k
    angle = rng.choice([0.0, math.pi / 2]) + rng.uniform(-0.2, 0.2)
    # The river the bridge spans: a dark band across it.
    river = _rotate(_rect(length * 0.75, 4 * length), angle, center)
    _fill(canvas, river, rng.uniform(*_SEA))
    deck = _rotate(_rect(length, width), angle, center)
    value = rng.uniform(*_TARGET)
    _fill(canvas, deck, value)
    edges = [[t * length / 2, s * width / 2] for t in np.linspace(-0.9, 0.9, 7) for s in (-1, 1)]
    _scatterers(canvas, rng, _rotate(edges, angle, center), value * 0.6)
    return deck


def _harbor(canvas, rng, k, center, angle):
    size = rng.uniform(70, 120) * k
    angle = rng.choice([0.0, math.pi / 2, math.pi, 1.5 * math.pi])
    _fill(canvas, _rotate(_rect(size, size), angle, center), rng.uniform(*_SEA))
    value = rng.uniform(*_TARGET)
    quay = _rect(size * 0.18, size) + [-size * 0.41, 0]
    parts = [_rotate(quay, angle, center)]
    n = int(rng.integers(3, 6))
    for y in np.linspace(-size * 0.4, size * 0.4, n):
        pier_len = size * rng.uniform(0.5, 0.82)
        pier = _rect(pier_len, size * 0.06) + [-size * 0.32 + pier_len / 2, y]
        parts.append(_rotate(pier, angle, center))
    for p in parts:
        _fill(canvas, p, value * rng.uniform(0.5, 0.9))
    # Moored ships would be separate objects; here a few bright returns along the piers.
    _scatterers(canvas, rng, _rotate(rng.uniform(-0.4, 0.4, (6, 2)) * size, angle, center), value)
    return np.concatenate(parts)


_DRAW = [_ship, _aircraft, _car, _tank, _bridge, _harbor]
# Largest extent of each class at 256 px (to keep the target inside the image).
_EXTENT = [64, 60, 18, 28, 150, 120]


def _background(rng, size):
    """Dark sea with brighter, textured land patches (linear reflectivity)."""
    coarse = rng.random((size // 32 + 2, size // 32 + 2)).astype(np.float32)
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    land = field > rng.uniform(0.45, 1.0)
    texture = cv2.resize(rng.random((size // 8, size // 8)).astype(np.float32), (size, size))
    sea_level, land_level = rng.uniform(*_SEA), rng.uniform(*_LAND)
    return np.where(land, land_level * (0.5 + texture), sea_level).astype(np.float32)


def _place_targets(canvas, rng, k, num_objects):
    """Draw up to ``num_objects`` non-overlapping targets of size factor ``k`` on ``canvas``."""
    size = canvas.shape[0]
    objects, taken = [], []
    for _ in range(num_objects):
        cls = int(rng.choice(len(_DRAW), p=_CLASS_WEIGHTS))
        half = min(_EXTENT[cls] * k * 0.6, size * 0.45)
        for _ in range(20):
            center = rng.uniform(half, size - half, 2)
            box = (center[0] - half, center[1] - half, center[0] + half, center[1] + half)
            if all(box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3] for b in taken):
                break
        else:
            continue
        taken.append(box)
        pts = _DRAW[cls](canvas, rng, k, center, rng.uniform(0, 2 * math.pi))
        x0, y0 = np.clip(pts.min(axis=0), 0, size)
        x1, y1 = np.clip(pts.max(axis=0), 0, size)
        objects.append((cls, [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]))
    return objects


def render_sar_image(rng, size, num_objects, looks=4.0):
    """
    Render one single-channel SAR-like image with targets.

    Args:
        size (int): image side in pixels; target sizes scale with ``size / 256``.
        num_objects (int): how many targets to try to place (fewer if they do not fit).
        looks (float): looks of the multiplicative gamma speckle (mean 1); lower is noisier.

    Returns:
        tuple(np.ndarray, list[tuple[int, list[float]]]): a uint8 HxW image and
        (category id, [x, y, w, h]) per target.
    """
    k = size / 256.0
    canvas = _background(rng, size)
    objects = _place_targets(canvas, rng, k, num_objects)
    speckle = rng.gamma(looks, 1.0 / looks, canvas.shape).astype(np.float32)
    amplitude = np.sqrt(np.clip(canvas, 0, None) * speckle)
    return np.clip(amplitude * 255.0, 0, 255).astype(np.uint8), objects


def render_sar_scene(rng, size, num_objects, target_scale=800 / 256, looks=4.0):
    """
    Render a large scene like :func:`render_sar_image`, as 16-bit amplitude (the 8-bit images'
    0..1 scale stretched to 0..65535), with targets drawn as in a ``256 * target_scale`` px
    image: a window of that size, resized to the model's input, shows them as training does.

    Returns:
        tuple(np.ndarray, list[tuple[int, list[float]]]): a uint16 HxW image and
        (category id, [x, y, w, h]) per target.
    """
    coarse = _background(rng, max(32, round(size / target_scale)))
    canvas = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    del coarse
    objects = _place_targets(canvas, rng, target_scale, num_objects)
    for y in range(0, size, 1024):  # speckle in row blocks, to bound the memory
        block = canvas[y : y + 1024]
        speckle = rng.gamma(looks, 1.0 / looks, block.shape).astype(np.float32)
        block[:] = np.sqrt(np.clip(block, 0, None) * speckle)
    return np.round(np.clip(canvas, 0, 1) * 65535).astype(np.uint16), objects


def _write_split(root, split, num_images, first_index, seed, draw):
    """Write ``split``: image ``i`` is ``draw(rng)`` with ``rng`` seeded by ``seed + [i]``."""
    image_dir = os.path.join(root, "JPEGImages", split)
    os.makedirs(image_dir)
    images, annotations = [], []
    for i in range(num_images):
        ext, pixels, objects = draw(np.random.default_rng([*seed, i]))
        file_name = f"{first_index + i:07d}.{ext}"
        save_kwargs = {"quality": 92} if ext == "jpg" else {}
        Image.fromarray(pixels, mode="L").save(os.path.join(image_dir, file_name), **save_kwargs)
        height, width = pixels.shape
        images.append({"id": i, "file_name": file_name, "width": width, "height": height})
        for cls, bbox in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": cls,
                    "bbox": bbox,
                    "area": round(bbox[2] * bbox[3], 2),
                    "iscrowd": 0,
                    "ignore": 0,
                    "segmentation": [],
                }
            )
    categories = [{"id": c["id"], "name": c["name"]} for c in SARDET100K_CATEGORIES]
    with open(os.path.join(root, "Annotations", f"{split}.json"), "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return {"images": len(images), "boxes": len(annotations)}


def make_synthetic_sardet(
    root,
    num_train=300,
    num_val=50,
    num_test=50,
    seed=0,
    sizes=(256, 512, 800),
    formats=_FORMATS,
    max_objects=4,
    empty_fraction=0.05,
    looks=4.0,
    overwrite=False,
):
    """
    Write a synthetic SAR detection set in the SARDet-100K layout (bare file names, 0-based
    category ids, no ``info``/``licenses``): single-channel sea and land clutter under gamma
    speckle, with ships (with wakes), aircraft, cars, tanks, bridges and harbours. It is
    written beside ``root`` and renamed at the end; it depends only on the arguments.

    Args:
        num_train, num_val, num_test (int): images per split (0 skips the split).
        seed (int): image ``i`` of a split is drawn from ``(seed, split, i)``.
        sizes, formats (tuple): square image sides and file formats ("jpg", "png", "bmp") to
            draw from.
        empty_fraction (float): fraction of images with no target (and no annotation).
        looks (float): speckle looks (see :func:`render_sar_image`).

    Returns:
        dict: ``{split: {"images": int, "boxes": int}}``.
    """
    unknown = set(formats) - set(_FORMATS)
    if unknown:
        raise ValueError(f"Unknown image formats {sorted(unknown)}; use {sorted(_FORMATS)}.")
    root = os.path.abspath(root)
    if os.path.exists(root) and not overwrite:
        raise FileExistsError(f"'{root}' exists; pass overwrite=True (--overwrite) to replace it.")

    def draw(rng):
        size, ext = int(rng.choice(sizes)), str(rng.choice(formats))
        n = 0 if rng.random() < empty_fraction else int(rng.integers(1, max_objects + 1))
        return (ext, *render_sar_image(rng, size, n, looks=looks))

    with atomic_dir(root, overwrite=overwrite) as tmp:
        os.makedirs(os.path.join(tmp, "Annotations"))
        summary, first = {}, 0
        counts = {"train": num_train, "val": num_val, "test": num_test}
        for split_index, (split, n) in enumerate(counts.items()):
            if n > 0:
                summary[split] = _write_split(tmp, split, n, first, [seed, split_index], draw)
                first += n
    return summary
