"""A quirky SARDet-style root through one detectron2 training step and a COCOEvaluator run."""

import json
import os
import uuid

import detectron2.data.transforms as T
import pytest
import torch
from _quirks import inject_sardet_quirks
from detectron2.data import (
    DatasetCatalog,
    DatasetMapper,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.evaluation import COCOEvaluator, inference_on_dataset
from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone, RetinaNet
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.meta_arch.retinanet import RetinaNetHead
from detectron2.structures import Boxes, BoxMode, Instances
from detectron2.utils.events import EventStorage
from torch import nn

from sar_lora_dino.data import (
    SARDetCOCOEvaluator,
    get_sardet_train_dicts,
    make_synthetic_sardet,
    register_sardet100k,
)


class _TinyBackbone(Backbone):
    """Two strided convs: one stride-8 feature map of 16 channels."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, 2, 1),
            nn.ReLU(),
        )

    def forward(self, x):
        return {"p3": self.body(x)}

    def output_shape(self):
        return {"p3": ShapeSpec(channels=16, stride=8)}


def _tiny_retinanet():
    torch.manual_seed(0)
    return RetinaNet(
        backbone=_TinyBackbone(),
        head=RetinaNetHead(
            input_shape=[ShapeSpec(channels=16)], num_classes=6, num_anchors=9, conv_dims=[16]
        ),
        head_in_features=["p3"],
        anchor_generator=DefaultAnchorGenerator(
            sizes=[[16, 20, 25]], aspect_ratios=[0.5, 1, 2], strides=[8]
        ),
        box2box_transform=Box2BoxTransform(weights=(1.0, 1.0, 1.0, 1.0)),
        anchor_matcher=Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True),
        num_classes=6,
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
        input_format="RGB",
    )


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("te") / "SARDet_100K")
    make_synthetic_sardet(root, num_train=8, num_val=8, num_test=6, seed=7, empty_fraction=0.0)
    inject_sardet_quirks(root, "train")
    inject_sardet_quirks(root, "val", zero_annotation_id=True)
    # test: clean boxes, but annotation ids from 0 as well as category ids
    test_json = os.path.join(root, "Annotations", "test.json")
    with open(test_json) as f:
        data = json.load(f)
    for i, a in enumerate(data["annotations"]):
        a["id"] = i
    with open(test_json, "w") as f:
        json.dump(data, f)
    prefix = "te_" + uuid.uuid4().hex[:8]
    return register_sardet100k(root, prefix=prefix, splits=["train", "val", "test"])


def test_one_training_step(names):
    model = _tiny_retinanet()
    mapper = DatasetMapper(is_train=True, augmentations=[T.Resize((128, 128))], image_format="RGB")
    loader = build_detection_train_loader(
        dataset=get_sardet_train_dicts(names[0]), mapper=mapper, total_batch_size=4, num_workers=0
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with EventStorage(0):
        batch = next(iter(loader))
        assert all(b["image"].shape == (3, 128, 128) for b in batch)
        losses = model(batch)
        loss = sum(losses.values())
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()


def test_coco_evaluator_run(names, tmp_path):
    model = _tiny_retinanet().eval()
    mapper = DatasetMapper(is_train=False, augmentations=[T.Resize((128, 128))], image_format="RGB")
    loader = build_detection_test_loader(dataset=DatasetCatalog.get(names[1]), mapper=mapper)
    model.test_score_thresh = 0.0  # an untrained model: keep its detections so the API runs
    results = inference_on_dataset(model, loader, SARDetCOCOEvaluator(names[1], output_dir=None))
    assert set(results["bbox"]) >= {"AP", "AP50", "AP-ship", "AP-harbor"}


def _oracle(dataset_name, evaluator):
    """Feed the cleaned ground truth back as detections (score 1)."""
    evaluator.reset()
    for d in DatasetCatalog.get(dataset_name):
        inst = Instances((d["height"], d["width"]))
        annos = [a for a in d["annotations"] if not a["iscrowd"]]
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos]
        inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        inst.scores = torch.ones(len(annos))
        inst.pred_classes = torch.tensor([a["category_id"] for a in annos], dtype=torch.int64)
        evaluator.process([{"image_id": d["image_id"]}], [{"instances": inst}])
    return evaluator.evaluate()["bbox"]


def test_ground_truth_scores_full_ap_with_zero_based_ids(names):
    # 0-based category and annotation ids, no info/licenses key in the JSON
    ours = _oracle(names[2], SARDetCOCOEvaluator(names[2], distributed=False))
    assert ours["AP"] == pytest.approx(100.0)
    stock = _oracle(names[2], COCOEvaluator(names[2], distributed=False, use_fast_impl=False))
    assert stock["AP"] < 100.0  # pycocotools never matches the ground truth with id 0


def test_quirky_ground_truth_is_evaluated_as_in_the_json(names):
    # The JSON's zero-area and ignore boxes stay ground truth for pycocotools (as in the
    # original's evaluation), so detections of the cleaned boxes cannot reach 100 AP.
    ours = _oracle(names[1], SARDetCOCOEvaluator(names[1], distributed=False))
    assert 50.0 < ours["AP50"] < 100.0
