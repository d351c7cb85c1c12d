"""The fast COCO backend gives the same AP and per-class AP as pycocotools, ids from 0 included."""

import json
import math
import sys
import uuid

import numpy as np
import pytest
import torch
from detectron2.data.datasets import register_coco_instances
from detectron2.evaluation import coco_evaluation
from detectron2.structures import Boxes, Instances
from pycocotools.cocoeval import COCOeval

from sar_lora_dino.data import evaluator as sar_evaluator
from sar_lora_dino.data.evaluator import ShiftedIdCOCOEvaluator, ensure_fast_coco_eval

CLASSES = ["ship", "aircraft", "car", "tank", "bridge", "harbor"]


def _write_gt(path, num_images=40, seed=0):
    """GT with 0-based image, category and annotation ids, varied sizes, a crowd box."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(num_images):
        images.append({"id": i, "file_name": f"{i:07d}.png", "height": 256, "width": 320})
        for _ in range(int(rng.integers(0, 5))):
            w, h = rng.uniform(4, 150, size=2)
            x, y = rng.uniform(0, 320 - w), rng.uniform(0, 256 - h)
            box = [round(float(v), 2) for v in (x, y, w, h)]
            anns.append(
                {
                    "id": len(anns),
                    "image_id": i,
                    "category_id": int(rng.integers(0, 6)),
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": int(len(anns) == 3),
                    "segmentation": [],
                }
            )
    data = {"images": images, "annotations": anns, "categories": []}
    data["categories"] = [{"id": i, "name": n} for i, n in enumerate(CLASSES)]
    with open(path, "w") as f:
        json.dump(data, f)
    return data


def _detections(gt, seed=1):
    """Jittered copies of the GT (some with the wrong class), false positives, random scores."""
    rng = np.random.default_rng(seed)
    per_image = {img["id"]: [] for img in gt["images"]}
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        for _ in range(int(rng.integers(0, 3))):
            dx, dy, dw, dh = rng.normal(0, 0.15, size=4) * [w, h, w, h]
            cls = a["category_id"] if rng.random() < 0.8 else int(rng.integers(0, 6))
            per_image[a["image_id"]].append(
                ([x + dx, y + dy, x + dx + w + dw, y + dy + h + dh], cls)
            )
    for img_id, dets in per_image.items():
        for _ in range(int(rng.integers(0, 4))):
            x, y = rng.uniform(0, 250, size=2)
            dets.append(
                ([x, y, x + rng.uniform(5, 70), y + rng.uniform(5, 70)], int(rng.integers(6)))
            )
    out = []
    for img_id, dets in per_image.items():
        inst = Instances((256, 320))
        inst.pred_boxes = Boxes(torch.tensor([d[0] for d in dets], dtype=torch.float32).view(-1, 4))
        inst.scores = torch.tensor(rng.uniform(0.05, 1.0, size=len(dets)), dtype=torch.float32)
        inst.pred_classes = torch.tensor([d[1] for d in dets], dtype=torch.int64)
        out.append(({"image_id": img_id}, {"instances": inst}))
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("eval") / "val.json")
    gt = _write_gt(path)
    name = "evalbackends_" + uuid.uuid4().hex[:8]
    register_coco_instances(
        name, {"thing_classes": CLASSES}, path, str(tmp_path_factory.getbasetemp())
    )
    return name, _detections(gt)


def _evaluate(name, dets, **kwargs):
    ev = ShiftedIdCOCOEvaluator(name, distributed=False, output_dir=None, **kwargs)
    ev.reset()
    for inp, out in dets:
        ev.process([inp], [out])
    return ev.evaluate()["bbox"]


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        both_nan = math.isnan(a[k]) and math.isnan(b[k])
        assert both_nan or a[k] == b[k], (k, a[k], b[k])


def test_fast_backend_matches_pycocotools(dataset):
    pytest.importorskip("faster_coco_eval")
    name, dets = dataset
    fast = _evaluate(name, dets)
    if not sar_evaluator.native_fast_eval_available():
        from faster_coco_eval import COCOeval_faster

        assert coco_evaluation.COCOeval_opt is COCOeval_faster
    reference = _evaluate(name, dets, use_fast_impl=False)
    _same(fast, reference)
    assert {f"AP-{c}" for c in CLASSES} <= fast.keys()
    assert 0.0 < fast["AP"] < 100.0 and fast["AP-ship"] != fast["AP-car"]


def test_perfect_detections_with_annotation_id_zero(dataset, tmp_path):
    # the GT fed back as detections: 100 AP with both backends (id 0 is shifted in memory)
    name, _ = dataset
    ev = ShiftedIdCOCOEvaluator(name, distributed=False, output_dir=None)
    assert min(a["id"] for a in ev._coco_api.dataset["annotations"]) == 1
    gt_dets = []
    for img_id in ev._coco_api.getImgIds():
        anns = [a for a in ev._coco_api.imgToAnns[img_id] if not a["iscrowd"]]
        inst = Instances((256, 320))
        xyxy = [
            [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
            for a in anns
        ]
        inst.pred_boxes = Boxes(torch.tensor(xyxy, dtype=torch.float64).view(-1, 4))
        inst.scores = torch.ones(len(anns))
        inst.pred_classes = torch.tensor([a["category_id"] for a in anns], dtype=torch.int64)
        gt_dets.append(({"image_id": img_id}, {"instances": inst}))
    for use_fast in (True, False):
        assert _evaluate(name, gt_dets, use_fast_impl=use_fast)["AP50"] == pytest.approx(100.0)


def test_fallback_when_detectron2_main_lacks_its_cpp_evaluator(monkeypatch):
    # detectron2 main without _C: fast_eval_api failed to import, COCOeval_opt is pycocotools'
    pytest.importorskip("faster_coco_eval")
    from faster_coco_eval import COCOeval_faster

    monkeypatch.delitem(sys.modules, "detectron2.evaluation.fast_eval_api", raising=False)
    monkeypatch.setattr(coco_evaluation, "COCOeval_opt", COCOeval)
    assert not sar_evaluator.native_fast_eval_available()
    assert ensure_fast_coco_eval()
    assert coco_evaluation.COCOeval_opt is COCOeval_faster


def test_without_any_fast_backend_pycocotools_is_used(monkeypatch, dataset):
    name, _ = dataset
    monkeypatch.setattr(sar_evaluator, "native_fast_eval_available", lambda: False)
    monkeypatch.setattr(sar_evaluator.importlib.util, "find_spec", lambda n: None)
    assert not ensure_fast_coco_eval()
    assert ShiftedIdCOCOEvaluator(name, distributed=False)._use_fast_impl is False
