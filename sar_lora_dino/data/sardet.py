"""Registration of the SARDet-100K splits (and any root in the same layout) with detectron2."""

import collections
import json
import logging
import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from detectron2.utils.logger import log_first_n

__all__ = [
    "SARDET100K_CATEGORIES",
    "clean_annotation",
    "get_sardet100k_root",
    "load_sardet_json",
    "read_annotation_json",
    "register_sardet100k",
    "split_paths",
]

logger = logging.getLogger(__name__)

# Category ids are 0-based in the released JSON; colours as in the original toolkit's palette.
SARDET100K_CATEGORIES = [
    {"id": 0, "name": "ship", "color": [220, 20, 60]},
    {"id": 1, "name": "aircraft", "color": [119, 11, 32]},
    {"id": 2, "name": "car", "color": [0, 0, 142]},
    {"id": 3, "name": "tank", "color": [0, 0, 230]},
    {"id": 4, "name": "bridge", "color": [106, 0, 228]},
    {"id": 5, "name": "harbor", "color": [0, 60, 100]},
]

_CLASSES = [c["name"] for c in SARDET100K_CATEGORIES]
_SPLITS = ("train", "val", "test")

_LAYOUT = (
    "Expected layout:\n"
    "  {root}/\n"
    "    Annotations/{{train,val,test}}.json\n"
    "    JPEGImages/{{train,val,test}}/   (bare file names, e.g. 0000026.jpg)\n"
    "Set SARDET100K_ROOT to the folder that holds Annotations/ and JPEGImages/ "
    "(or DETECTRON2_DATASETS to its parent), see datasets/README.md; "
    "datasets/make_synthetic_sardet.py writes a small synthetic copy in this layout."
)


def get_sardet100k_root():
    """``$SARDET100K_ROOT``, else ``$DETECTRON2_DATASETS/SARDet_100K``, else ``datasets/...``."""
    root = os.environ.get("SARDET100K_ROOT")
    if root:
        return os.path.expanduser(root)
    return os.path.join(
        os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")), "SARDet_100K"
    )


def split_paths(root, split):
    """(annotation file, image folder) of ``split`` under ``root``."""
    json_file = os.path.join(root, "Annotations", f"{split}.json")
    return json_file, os.path.join(root, "JPEGImages", split)


def read_annotation_json(json_file, thing_classes=_CLASSES):
    """
    Read a SARDet-100K annotation file, checking the keys of the file and of each image,
    0-based category ids named as ``thing_classes``, and each annotation's image and category.
    A ValueError names the file and the offending entry.
    """
    try:
        with open(json_file, "r") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"Malformed annotation JSON '{json_file}': {e}") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"Annotation file '{json_file}' is not UTF-8 JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"Annotation JSON '{json_file}' must hold an object, got {type(data)}.")
    for key in ("images", "categories"):
        if key not in data:
            raise ValueError(f"Annotation JSON '{json_file}' has no '{key}' key.")
    for cat in data["categories"]:
        cid, name = cat.get("id"), cat.get("name")
        if not isinstance(cid, int) or not 0 <= cid < len(thing_classes):
            raise ValueError(
                f"'{json_file}': category {cat} has an id outside 0..{len(thing_classes) - 1} "
                f"(SARDet-100K ids are 0-based: {list(enumerate(thing_classes))})."
            )
        if name is not None and name.lower() != thing_classes[cid]:
            raise ValueError(
                f"'{json_file}': category id {cid} is named '{name}', expected "
                f"'{thing_classes[cid]}' (ids are 0-based, classes in order: {thing_classes})."
            )
    for img in data["images"]:
        for key in ("id", "file_name", "width", "height"):
            if key not in img:
                raise ValueError(f"'{json_file}': image entry {img} has no '{key}'.")
    image_ids = {img["id"] for img in data["images"]}
    for ann in data.get("annotations", []):
        if ann.get("image_id") not in image_ids:
            raise ValueError(f"'{json_file}': annotation {ann.get('id')} refers to unknown image.")
        if not 0 <= ann.get("category_id", -1) < len(thing_classes):
            raise ValueError(
                f"'{json_file}': annotation {ann.get('id')} has category_id "
                f"{ann.get('category_id')}, expected 0..{len(thing_classes) - 1}."
            )
    return data


def _check_images(images, image_root, json_file, split_name):
    """Raise before training if an image of the JSON is missing or empty on disk."""
    with os.scandir(image_root) as it:  # one listing instead of a stat per image
        sizes = {entry.name: entry.stat().st_size for entry in it if entry.is_file()}
    missing, empty = [], []
    for img in images:
        name = img["file_name"]
        path = os.path.join(image_root, name)
        size = sizes.get(name)
        if size is None and os.path.isfile(path):  # a name with sub-folders
            size = os.path.getsize(path)
        if size is None:
            missing.append(name)
        elif size == 0:
            empty.append(name)
    problems = []
    for label, names in (("missing", missing), ("zero-byte", empty)):
        if names:
            shown = "\n".join("  " + os.path.join(image_root, n) for n in names[:10])
            more = f"\n  ... and {len(names) - 10} more" if len(names) > 10 else ""
            problems.append(f"{len(names)} {label} image(s):\n{shown}{more}")
    if problems:
        raise FileNotFoundError(
            f"Dataset '{split_name}' ('{json_file}') lists images that cannot be read:\n"
            + "\n".join(problems)
            + "\nRun `python datasets/prepare_sardet100k.py --root <root>` for a full report."
        )


def clean_annotation(ann, width, height, stats):
    """
    Apply the original training rules to one JSON annotation: skip ``ignore`` boxes and boxes
    with no area inside the image (area <= 0, w < 1, h < 1 or no overlap), clip the rest.

    Args:
        stats (collections.Counter): counts "ignore", "no_area", "clipped" and "iscrowd".

    Returns:
        dict or None: a detectron2 annotation, or None when the box is skipped.
    """
    if ann.get("ignore", False):
        stats["ignore"] += 1
        return None
    x, y, w, h = (float(v) for v in ann["bbox"])
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    area = ann.get("area", w * h)
    if x1 <= x0 or y1 <= y0 or area <= 0 or w < 1 or h < 1:
        stats["no_area"] += 1
        return None
    if (x0, y0, x1, y1) != (x, y, x + w, y + h):
        stats["clipped"] += 1
    iscrowd = int(bool(ann.get("iscrowd", 0)))
    stats["iscrowd"] += iscrowd
    return {
        "bbox": [x0, y0, x1 - x0, y1 - y0],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": ann["category_id"],
        "iscrowd": iscrowd,
    }


def load_sardet_json(json_file, image_root, dataset_name=None):
    """
    Load a SARDet-100K annotation file into detectron2's standard dataset dicts. Every image
    is kept, with or without boxes (evaluation needs all; training filters with
    :func:`get_sardet_train_dicts`); boxes follow :func:`clean_annotation`, with the counts
    logged once per file. A missing or empty image raises before training.

    Args:
        dataset_name (str): name used in messages and to look up ``thing_classes``.

    Returns:
        list[dict]: standard records plus ``num_json_annotations``: how many annotations the
        JSON lists for the image before any is dropped (0: none at all).
    """
    split_name = dataset_name or json_file
    for path, exists in ((json_file, os.path.isfile), (image_root, os.path.isdir)):
        if not exists(path):
            root = os.path.dirname(os.path.dirname(path))
            raise FileNotFoundError(
                f"SARDet-100K '{path}' not found. Dataset root: '{root}'.\n"
                + _LAYOUT.format(root=root)
            )

    thing_classes = dataset_name and MetadataCatalog.get(dataset_name).get("thing_classes")
    data = read_annotation_json(json_file, thing_classes or _CLASSES)
    images = data["images"]
    _check_images(images, image_root, json_file, split_name)
    anns_per_image = {img["id"]: [] for img in images}
    for ann in data.get("annotations", []):
        anns_per_image[ann["image_id"]].append(ann)

    stats = collections.Counter()
    records = []
    for img in images:
        w, h = img["width"], img["height"]
        raw = anns_per_image[img["id"]]
        objs = [clean_annotation(a, w, h, stats) for a in raw]
        records.append(
            {
                "file_name": os.path.join(image_root, img["file_name"]),
                "height": h,
                "width": w,
                "image_id": img["id"],
                "annotations": [o for o in objs if o is not None],
                "num_json_annotations": len(raw),
            }
        )

    # the loader runs on every DatasetCatalog.get(); the counts are worth reading once
    kept = sum(len(r["annotations"]) for r in records)
    no_box = sum(1 for r in records if r["num_json_annotations"] == 0)
    message = (
        f"Loaded {len(records)} images ({no_box} without any box) and {kept} boxes for "
        f"'{split_name}' from {json_file}. Dropped {stats['ignore']} 'ignore' boxes and "
        f"{stats['no_area']} boxes with no area inside the image; clipped "
        f"{stats['clipped']} boxes at the border; {stats['iscrowd']} iscrowd boxes kept as crowd."
    )
    log_first_n(logging.INFO, message, name=__name__, key="message")
    return records


# name -> {"root": root given (None: the default, resolved at first load), "loaded": root read}
_REGISTERED = {}


def _set_metadata(name, root, split):
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)
    json_file, image_root = split_paths(root, split)
    MetadataCatalog.get(name).set(
        thing_classes=list(_CLASSES),
        thing_colors=[c["color"] for c in SARDET100K_CATEGORIES],
        thing_dataset_id_to_contiguous_id={c["id"]: c["id"] for c in SARDET100K_CATEGORIES},
        json_file=json_file,
        image_root=image_root,
        evaluator_type="coco",
    )


def _load_split(name, split):
    entry = _REGISTERED[name]
    root = entry["root"]
    if root is None:  # the default root: whatever SARDET100K_ROOT says when first loaded
        root = get_sardet100k_root()
        if entry["loaded"] not in (None, root):
            raise ValueError(
                f"Dataset {name!r} was first loaded from '{entry['loaded']}', but the default "
                f"root is now '{root}' (SARDET100K_ROOT changed in between). Set it once before "
                "the first load, or register the new root under another prefix: "
                "register_sardet100k(root=..., prefix=...)."
            )
        if MetadataCatalog.get(name).json_file != split_paths(root, split)[0]:
            logger.info(f"{name}: the default root resolves to '{root}' at first load")
            _set_metadata(name, root, split)
    entry["loaded"] = root
    return load_sardet_json(*split_paths(root, split), name)


def register_sardet100k(root=None, prefix="sardet100k", splits=_SPLITS):
    """
    Register the splits of a root in the SARDet-100K layout as ``<prefix>_<split>``.

    Nothing is read now; files are read when a dataset is first used. Without ``root`` the
    default root (:func:`get_sardet100k_root`) is resolved at that first load, so setting
    ``SARDET100K_ROOT`` after import works; changing it after a load is an error. Registering
    the same names again with the same root is a no-op; with another root it replaces a default
    registration that was never loaded, and is an error otherwise (use another ``prefix``).

    Args:
        root (str): folder holding ``Annotations/<split>.json`` and ``JPEGImages/<split>/``.
        splits (Iterable[str]): split names, any subset or extra split with the same layout.

    Returns:
        list[str]: the dataset names of ``splits`` (registered now or before).
    """
    names = []
    for split in splits:
        name = f"{prefix}_{split}"
        names.append(name)
        if name in DatasetCatalog.list():
            entry = _REGISTERED.get(name)
            if entry is None:
                logger.warning(f"Dataset {name!r} was registered elsewhere; it is kept as it is.")
                continue
            if root is None or (
                entry["root"] is not None
                and os.path.abspath(entry["root"]) == os.path.abspath(root)
            ):
                continue
            if entry["root"] is not None or entry["loaded"] is not None:
                old = entry["root"] or entry["loaded"]
                raise ValueError(
                    f"Dataset {name!r} is already registered with root '{old}'; registering "
                    f"root '{root}' under the same prefix {prefix!r} would be ambiguous. Pass "
                    "another prefix, e.g. register_sardet100k(root, prefix='mysar')."
                )
            DatasetCatalog.remove(name)
        _REGISTERED[name] = {"root": root, "loaded": None}
        DatasetCatalog.register(name, lambda n=name, s=split: _load_split(n, s))
        _set_metadata(name, get_sardet100k_root() if root is None else root, split)
    return names
