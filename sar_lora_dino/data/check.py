"""Checks a downloaded SARDet-100K root against the published counts, and writes subsets."""

import collections
import json
import os
import random
import shutil
import sys
from multiprocessing import Pool

from PIL import Image
from tqdm import tqdm

from sar_lora_dino.utils.io import atomic_dir

from .image_io import _stored_8bit, read_raw
from .sardet import _CLASSES, clean_annotation, read_annotation_json, split_paths
from .scaling import describe_scaling, parse_scaling

__all__ = ["PUBLISHED_COUNTS", "check_sardet_root", "format_report", "write_subset"]

# (images, boxes) per split, as published with SARDet-100K.
PUBLISHED_COUNTS = {"train": (94493, 198747), "val": (10492, 22703), "test": (11613, 24023)}


def _unreadable(e):
    return f"unreadable ({type(e).__name__}: {e})", None, None, None


def _inspect_image(args):
    """(status: "ok", "missing", "empty" or an error, size, mode, values: None for 8-bit
    images, else what ``scaling`` does)."""
    path, full, scaling = args
    if not os.path.isfile(path):
        return "missing", None, None, None
    if os.path.getsize(path) == 0:
        return "empty", None, None, None
    size = mode = eight = None
    try:
        with Image.open(path) as im:
            size, mode, eight = im.size, im.mode, _stored_8bit(im, path)
            if full:
                im.load()  # decodes every pixel: finds truncated files
            else:
                im.verify()
        if eight:
            return "ok", size, mode, None
    except Exception as e:  # any decoder error makes the file unusable; reported, not raised
        if eight or not full:
            return _unreadable(e)
    if not full:
        text = f"{path}: mode {mode} (not decoded with --quick)"
        return "ok", size, mode, {"dtype": f"mode {mode}", "text": text, "problem": None}
    try:
        raw = read_raw(path)  # beyond 8 bits, or a TIFF only tifffile/OpenCV reads
    except Exception as e:
        return _unreadable(e)
    text, problem = describe_scaling(raw, scaling, path)
    values = {"dtype": str(raw.dtype), "text": text, "problem": problem}
    return "ok", (raw.shape[1], raw.shape[0]), mode or str(raw.dtype), values


def _check_split(root, split, full_decode, workers, progress, scaling):
    json_file, image_root = split_paths(root, split)
    result = {"split": split, "json_file": json_file, "problems": []}
    if not os.path.isfile(json_file):
        result["problems"].append(f"{json_file}: missing")
        return result
    try:  # the loader's own checks: what passes here loads for training
        data = read_annotation_json(json_file)
    except ValueError as e:
        result["problems"].append(str(e))
        return result
    images, anns = data["images"], data.get("annotations", [])
    names = {c["id"]: c.get("name") for c in data["categories"]}
    expected = dict(enumerate(_CLASSES))
    if names != expected:
        result["problems"].append(f"{json_file}: categories {names}, expected {expected}")

    # the loader's box rules, counted: dropped (ignore, no area), clipped, crowd
    sizes = {img["id"]: (img["width"], img["height"]) for img in images}
    stats = collections.Counter()
    for a in anns:
        clean_annotation(a, *sizes[a["image_id"]], stats)
    per_class = collections.Counter(a["category_id"] for a in anns)
    with_boxes = {a["image_id"] for a in anns}
    result.update(
        images=len(images),
        boxes=len(anns),
        per_class={_CLASSES[c]: n for c, n in sorted(per_class.items())},
        images_without_boxes=sum(1 for img in images if img["id"] not in with_boxes),
        no_area_boxes=stats["no_area"],
        border_boxes=stats["clipped"],
        ignore_boxes=stats["ignore"],
        crowd_boxes=stats["iscrowd"],
    )
    if not os.path.isdir(image_root):
        result["problems"].append(f"{image_root}: missing image folder")
        return result

    jobs = [(os.path.join(image_root, img["file_name"]), full_decode, scaling) for img in images]
    bar_kwargs = dict(total=len(jobs), desc=f"{split}: reading images", disable=not progress)
    if workers > 1:
        with Pool(workers) as pool:
            statuses = list(tqdm(pool.imap(_inspect_image, jobs, chunksize=64), **bar_kwargs))
    else:
        statuses = [_inspect_image(j) for j in tqdm(jobs, **bar_kwargs)]
    size_hist, modes, formats = collections.Counter(), collections.Counter(), collections.Counter()
    bad = collections.defaultdict(list)
    deep = {"images": 0, "dtypes": collections.Counter(), "scaling": scaling, "examples": []}
    for img, (path, _, _), (status, size, mode, values) in zip(images, jobs, statuses):
        formats[os.path.splitext(path)[1].lower()] += 1
        if status != "ok":
            bad[status.split(" ")[0]].append(f"{path}: {status}")
            continue
        size_hist[f"{size[0]}x{size[1]}"] += 1
        modes[mode] += 1
        if values is not None:
            deep["images"] += 1
            deep["dtypes"][values["dtype"]] += 1
            if len(deep["examples"]) < 3:
                deep["examples"].append(values["text"])
            if values["problem"]:
                bad["not usable with this scaling"].append(values["problem"])
        if tuple(size) != (img["width"], img["height"]):
            bad["size mismatch"].append(
                f"{path}: {size[0]}x{size[1]} on disk, {img['width']}x{img['height']} in JSON"
            )
    result.update(
        size_histogram=dict(size_hist.most_common()),
        modes=dict(modes),
        formats=dict(formats),
        bad_images=dict(bad),
        beyond_8bit=deep,
    )
    for kind, items in bad.items():
        result["problems"].append(f"{len(items)} {kind} image(s), e.g. {items[0]}")
    return result


def check_sardet_root(
    root,
    splits=("train", "val", "test"),
    expected=PUBLISHED_COUNTS,
    full_decode=True,
    workers=1,
    progress=None,
    scaling="none",
):
    """
    Check a root in the SARDet-100K layout: JSON files, image files, counts.

    Args:
        expected (dict or None): ``{split: (images, boxes)}`` to compare with, or None.
        full_decode (bool): decode every image (finds truncated files); False only reads headers.
        progress (bool or None): progress bars; None shows them when stderr is a terminal.
        scaling (str): the ``dataloader.scaling`` training will use; images beyond 8 bits are
            reported with what it does to them, and as problems when it cannot use them.

    Returns:
        dict: ``{"root", "splits": {split: report}, "problems": [str]}``; no problems means the
        copy is usable.
    """
    scaling = str(parse_scaling(scaling))
    progress = sys.stderr.isatty() if progress is None else progress
    report = {"root": root, "splits": {}, "problems": [], "scaling": scaling}
    if not os.path.isdir(root):
        report["problems"].append(f"{root}: dataset root not found (set SARDET100K_ROOT)")
        return report
    for split in splits:
        r = _check_split(root, split, full_decode, workers, progress, scaling)
        if expected is not None and split in expected and "images" in r:
            want = expected[split]
            if (r["images"], r["boxes"]) != tuple(want):
                r["problems"].append(
                    f"{r['images']} images / {r['boxes']} boxes, published {want[0]} / {want[1]}"
                )
        report["splits"][split] = r
        report["problems"] += [f"{split}: {p}" for p in r["problems"]]
    return report


def format_report(report):
    """A human-readable summary of a :func:`check_sardet_root` report."""
    lines = [f"SARDet-100K check of {report['root']}"]
    for split, r in report["splits"].items():
        if "images" not in r:
            lines.append(f"[{split}] not checked")
            continue
        lines.append(
            f"[{split}] {r['images']} images, {r['boxes']} boxes; "
            f"{r['images_without_boxes']} images without boxes"
        )
        lines.append(
            "  boxes per class: " + ", ".join(f"{k} {v}" for k, v in r["per_class"].items())
        )
        lines.append(
            f"  boxes with no area {r['no_area_boxes']}, over the border "
            f"{r['border_boxes']}, ignore {r['ignore_boxes']}, iscrowd {r['crowd_boxes']}"
        )
        if "size_histogram" in r:
            top = list(r["size_histogram"].items())
            shown = ", ".join(f"{k}: {v}" for k, v in top[:10])
            more = f" (+{len(top) - 10} other sizes)" if len(top) > 10 else ""
            lines.append(f"  image sizes: {shown}{more}")
            lines.append(f"  formats: {r['formats']}; modes: {r['modes']}")
        deep = r.get("beyond_8bit", {})
        if deep.get("images"):
            lines.append(
                f"  {deep['images']} image(s) beyond 8 bits (16-bit/float: {deep['dtypes']}), "
                f"read with their values and scaled by dataloader.scaling '{deep['scaling']}':"
            )
            lines += [f"    {e}" for e in deep["examples"]]
    if report["problems"]:
        lines.append(f"PROBLEMS ({len(report['problems'])}):")
        lines += [f"  - {p}" for p in report["problems"]]
    else:
        lines.append("OK: no problems found.")
    return "\n".join(lines)


def write_subset(root, output, num_images, seed=0, progress=None):
    """
    Write a smaller copy of a root in the same layout (for smoke runs) into the new folder
    ``output``: ``num_images[split]`` images of each split, picked by ``seed`` among those on
    disk, with their annotations; the JSON keeps the source's keys.

    Returns:
        dict: ``{split: {"images": int, "boxes": int}}``.
    """
    output = os.path.abspath(output)
    progress = sys.stderr.isatty() if progress is None else progress
    if os.path.exists(output):
        raise FileExistsError(f"'{output}' exists; choose another --out.")
    summary = {}
    with atomic_dir(output) as tmp:
        os.makedirs(os.path.join(tmp, "Annotations"))
        for split, n in num_images.items():
            json_file, src_dir = split_paths(root, split)
            data = read_annotation_json(json_file)  # what would not load is not copied
            present = [
                im
                for im in data["images"]
                if os.path.isfile(os.path.join(src_dir, im["file_name"]))
            ]
            picked = random.Random(seed).sample(present, min(n, len(present)))
            picked.sort(key=lambda im: im["id"])
            ids = {im["id"] for im in picked}
            dst_json, dst_dir = split_paths(tmp, split)
            os.makedirs(dst_dir)
            for im in tqdm(picked, desc=f"{split}: copying", leave=False, disable=not progress):
                shutil.copy2(os.path.join(src_dir, im["file_name"]), dst_dir)
            data["images"] = picked
            data["annotations"] = [a for a in data.get("annotations", []) if a["image_id"] in ids]
            with open(dst_json, "w") as f:
                json.dump(data, f)
            summary[split] = {"images": len(picked), "boxes": len(data["annotations"])}
    return summary
