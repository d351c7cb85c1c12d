"""Reproduce the quirks of the real SARDet-100K files on a synthetic root (for tests)."""

import json
import os

from PIL import Image

__all__ = ["inject_sardet_quirks"]


def inject_sardet_quirks(root, split, missing_image=False, zero_annotation_id=False):
    """
    Edit ``root/Annotations/<split>.json`` (and its images) in place so that it holds the odd
    cases a loader must cope with. Needs a split of at least 6 images, the first 5 with boxes.

    Args:
        root (str): a root written by :func:`make_synthetic_sardet`.
        split (str): the split to edit.
        missing_image (bool): also delete the file of the last image.
        zero_annotation_id (bool): renumber annotation ids from 0 (pycocotools cannot match a
            ground truth with id 0).

    Returns:
        dict: image ids (or file path) of each quirk: "zero_area", "border", "no_box",
        "all_ignored", "crowd", "tiny" and, if asked, "missing" (a path).
    """
    json_file = os.path.join(root, "Annotations", f"{split}.json")
    with open(json_file) as f:
        data = json.load(f)
    images, anns = data["images"], data["annotations"]
    with_boxes = sorted({a["image_id"] for a in anns})
    if len(with_boxes) < 5 or len(images) < 6:
        raise ValueError(f"{json_file}: need >= 6 images, 5 with boxes, to inject the quirks.")
    by_id = {im["id"]: im for im in images}
    zero_area, border, no_box, all_ignored, crowd = with_boxes[:5]
    next_id = max(a["id"] for a in anns) + 1

    def add(image_id, bbox, **extra):
        nonlocal next_id
        ann = {
            "id": next_id,
            "image_id": image_id,
            "category_id": 0,
            "bbox": bbox,
            "area": bbox[2] * bbox[3],
            "iscrowd": 0,
            "ignore": 0,
            "segmentation": [],
        }
        ann.update(extra)
        anns.append(ann)
        next_id += 1

    add(zero_area, [10.0, 10.0, 0.0, 12.0])
    w = by_id[border]["width"]
    add(border, [w - 20.0, 30.0, 40.0, 24.0], category_id=1)
    anns[:] = [a for a in anns if a["image_id"] != no_box]
    for a in anns:
        if a["image_id"] == all_ignored:
            a["ignore"] = 1
    add(crowd, [40.0, 40.0, 30.0, 30.0], iscrowd=1)

    tiny = max(by_id) + 1
    tiny_name = f"tiny_{split}.png"
    Image.new("L", (12, 12), 200).save(os.path.join(root, "JPEGImages", split, tiny_name))
    images.append({"id": tiny, "file_name": tiny_name, "width": 12, "height": 12})
    add(tiny, [2.0, 2.0, 6.0, 6.0], category_id=2)

    if zero_annotation_id:
        for i, a in enumerate(anns):
            a["id"] = i
    quirks = {
        "zero_area": zero_area,
        "border": border,
        "no_box": no_box,
        "all_ignored": all_ignored,
        "crowd": crowd,
        "tiny": tiny,
    }
    if missing_image:
        path = os.path.join(root, "JPEGImages", split, images[-2]["file_name"])
        os.remove(path)
        quirks["missing"] = path
    with open(json_file, "w") as f:
        json.dump(data, f)
    return quirks
