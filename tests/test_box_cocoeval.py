"""BoxCOCOeval gives pycocotools' box AP arrays bit for bit: crowds, ties, id 0, maxDets."""

import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from sar_lora_dino.data.box_cocoeval import BoxCOCOeval


def _data(seed, jitter=0.12, id0=True, score_decimals=1):
    """GT (with crowds, areas unlike w*h, empty images) and detections: near copies, some
    exact copies (IoU ties), wrong classes, a class without GT, one without detections, images
    with many boxes."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(40):
        images.append({"id": 3 * i + 5, "height": 300, "width": 300, "file_name": f"{i}.png"})
        for _ in range(int(rng.integers(0, 8))):
            if rng.random() < 0.3:  # integer boxes: equal IoUs between distinct pairs
                w, h = rng.integers(3, 60, 2).astype(float)
                x, y = rng.integers(0, 100, 2).astype(float)
            else:
                (w, h), (x, y) = rng.uniform(2, 150, 2), rng.uniform(0, 150, 2)
            anns.append(
                {
                    "id": len(anns) + (0 if id0 else 1),
                    "image_id": 3 * i + 5,
                    "category_id": int(rng.integers(1, 5)),
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "area": float(w * h * rng.uniform(0.8, 1.2)),
                    "iscrowd": int(rng.random() < 0.08),
                }
            )
    for a in anns:
        x, y, w, h = a["bbox"]
        for _ in range(int(rng.integers(0, 4))):
            j = np.zeros(4) if rng.random() < 0.2 else rng.normal(0, jitter, 4) * [w, h, w, h]
            c = a["category_id"] if rng.random() < 0.85 else int(rng.integers(1, 5))
            box = [x + j[0], y + j[1], max(w + j[2], 1), max(h + j[3], 1)]
            score = round(float(rng.uniform(0, 1)), score_decimals)
            dets.append({"image_id": a["image_id"], "category_id": c, "bbox": box, "score": score})
    for im in images:
        for _ in range(int(rng.integers(0, 120 if rng.random() < 0.1 else 10))):
            x, y = rng.uniform(0, 250, 2)
            box = [float(x), float(y), rng.uniform(1, 80), rng.uniform(1, 80)]
            score = round(float(rng.uniform(0, 1)), score_decimals)
            c = int(rng.integers(1, 6))
            dets.append({"image_id": im["id"], "category_id": c, "bbox": box, "score": score})
    # a class with ground truth and no detection
    box6 = {"id": len(anns) + 1, "image_id": 5, "category_id": 6, "bbox": [1.0, 1.0, 20.0, 20.0]}
    anns.append({**box6, "area": 400.0, "iscrowd": 0})
    cats = [{"id": c, "name": str(c)} for c in range(1, 7)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def _run(cls, gt, dets, max_dets=None, img_ids=None, arrays=False):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        if arrays:
            ev = cls.from_arrays(
                coco,
                np.array([d["image_id"] for d in dets]),
                np.array([d["category_id"] for d in dets]),
                np.array([d["bbox"] for d in dets]),
                np.array([d["score"] for d in dets]),
            )
        else:
            ev = cls(coco, coco.loadRes(copy.deepcopy(dets)), "bbox")
        if max_dets:
            ev.params.maxDets = max_dets
        if img_ids is not None:
            ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _assert_identical(ref, ours):
    for key in ("precision", "recall", "scores"):
        assert np.array_equal(ref.eval[key], ours.eval[key]), key
    assert np.array_equal(ref.stats, ours.stats)


@pytest.mark.parametrize(
    "seed, kw, max_dets",
    [
        (0, {}, None),
        (1, {"id0": False, "score_decimals": 6}, None),
        (2, {"jitter": 0.02}, [1, 5, 20]),  # tight boxes: many matches and conflicts
        (3, {"jitter": 0.3, "id0": False}, [1, 10, 100]),
    ],
)
def test_identical_to_pycocotools(seed, kw, max_dets):
    gt, dets = _data(seed, **kw)
    ref = _run(COCOeval, gt, dets, max_dets)
    _assert_identical(ref, _run(BoxCOCOeval, gt, dets, max_dets))
    _assert_identical(ref, _run(BoxCOCOeval, gt, dets, max_dets, arrays=True))
    assert 0.0 < ref.stats[1] < 1.0


def test_image_subset_and_arrays_path():
    gt, dets = _data(4, jitter=0.05)
    img_ids = [im["id"] for im in gt["images"][::3]]
    ref = _run(COCOeval, gt, dets, img_ids=img_ids)
    _assert_identical(ref, _run(BoxCOCOeval, gt, dets, img_ids=img_ids, arrays=True))


def test_detections_on_unknown_images_are_an_error():
    gt, dets = _data(5)
    dets[0]["image_id"] = 10**6
    with pytest.raises(ValueError, match="1000000"):
        _run(BoxCOCOeval, gt, dets, arrays=True)


def test_an_iou_tie_goes_to_the_later_ground_truth():
    # d1 overlaps both boxes with IoU 0.6; pycocotools gives it the later one, so d2 (a copy
    # of the first box) is a true positive too
    gt = {
        "images": [{"id": 1, "height": 50, "width": 50}],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": 1, "bbox": b, "area": 100.0, "iscrowd": 0}
            for i, b in enumerate([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 10.0, 10.0]])
        ],
        "categories": [{"id": 1, "name": "ship"}],
    }
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [2.5, 0.0, 10.0, 10.0], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 10.0, 10.0], "score": 0.8},
    ]
    ref = _run(COCOeval, gt, dets)
    _assert_identical(ref, _run(BoxCOCOeval, gt, dets, arrays=True))
    assert ref.stats[1] == pytest.approx(1.0)
