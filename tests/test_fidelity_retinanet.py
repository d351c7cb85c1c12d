"""Items 2, 4 and 5 of the fidelity list: loss normaliser, clipping and empty boxes."""

import copy

import pytest
import torch
from _models import tiny_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage


def _batch():
    """Two 64x72 images: one with two boxes, one with none (an all-negative sample)."""
    torch.manual_seed(1)
    with_boxes = Instances((64, 72))
    with_boxes.gt_boxes = Boxes(torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 20.0, 70.0, 44.0]]))
    with_boxes.gt_classes = torch.tensor([0, 1])
    empty = Instances((64, 72))
    empty.gt_boxes = Boxes(torch.zeros(0, 4))
    empty.gt_classes = torch.zeros(0, dtype=torch.int64)
    return [
        {"image": torch.rand(3, 64, 72) * 255, "instances": with_boxes},
        {"image": torch.rand(3, 64, 72) * 255, "instances": empty},
    ]


def _losses(model, batch):
    with EventStorage():
        return model(batch)


def _positives_per_image(model, batch):
    images = model.preprocess_image(batch)
    features = model.backbone(images.tensor)
    anchors = model.anchor_generator([features[f] for f in model.head_in_features])
    gt_labels, _ = model.label_anchors(anchors, [x["instances"] for x in batch])
    return [int(((g >= 0) & (g != model.num_classes)).sum()) for g in gt_labels]


def test_losses_divide_by_the_batch_positive_count():
    batch = _batch()
    model = tiny_model().train()
    ema = tiny_model(loss_normalizer="ema").train()
    pos = _positives_per_image(model, batch)
    assert pos[0] > 0 and pos[1] == 0
    batch_norm = pos[0] + 1  # each image counts at least 1, as the original's avg_factor
    ema_norm = 100 * 0.9 + 0.1 * pos[0]  # detectron2's first EMA step
    ours, theirs = _losses(model, batch), _losses(ema, batch)
    for name in ("loss_cls", "loss_box_reg"):
        expected = theirs[name] * ema_norm / batch_norm
        torch.testing.assert_close(ours[name], expected, rtol=1e-5, atol=0)


def test_resume_does_not_change_the_normaliser():
    batch = _batch()
    trained = tiny_model().train()
    for _ in range(3):  # what a run has seen before it was checkpointed
        _losses(trained, batch)
    resumed = tiny_model(loss_normalizer="batch").train()
    resumed.load_state_dict(copy.deepcopy(trained.state_dict()))
    a, b = _losses(trained, batch), _losses(resumed, batch)
    assert all(torch.equal(a[k], b[k]) for k in a)

    trained_ema = tiny_model(loss_normalizer="ema").train()
    for _ in range(3):
        _losses(trained_ema, batch)
    fresh_ema = tiny_model(loss_normalizer="ema").train()
    assert not torch.equal(
        _losses(trained_ema, batch)["loss_cls"], _losses(fresh_ema, batch)["loss_cls"]
    )


def _infer(model, boxes, scores, image_size=(100, 100)):
    """Run the post-processing on given boxes (as anchors, zero deltas) and class-0 scores."""
    cls = torch.zeros(len(scores), model.num_classes)
    cls[:, 0] = torch.tensor(scores)
    return model.inference_single_image(
        [Boxes(torch.tensor(boxes))], [cls], [torch.zeros(len(scores), 4)], image_size
    )


def test_box_crossing_the_border_is_clipped_before_nms():
    inside = [0.0, 10.0, 40.0, 50.0]
    crossing = [-60.0, 10.0, 40.0, 50.0]  # IoU 0.4 with `inside`; 1.0 once clipped
    original = _infer(tiny_model().eval(), [inside, crossing], [0.9, 0.8])
    assert len(original) == 1 and original.scores.tolist() == pytest.approx([0.9])
    d2 = _infer(
        tiny_model(clip_before_nms=False, drop_empty_before_nms=False).eval(),
        [inside, crossing],
        [0.9, 0.8],
    )
    assert len(d2) == 2  # detectron2 clips only after NMS, in detector_postprocess


def test_zero_area_boxes_never_reach_the_top_k():
    outside = [-50.0, 0.0, -10.0, 40.0]  # zero width once clipped
    boxes = [outside, [0.0, 0.0, 20.0, 20.0], [50.0, 50.0, 90.0, 90.0]]
    model = tiny_model().eval()
    model.max_detections_per_image = 2
    kept = _infer(model, boxes, [0.95, 0.9, 0.8])
    assert len(kept) == 2 and kept.pred_boxes.nonempty().all()
    assert kept.scores.tolist() == pytest.approx([0.9, 0.8])

    d2 = tiny_model(clip_before_nms=False, drop_empty_before_nms=False).eval()
    d2.max_detections_per_image = 2
    kept_d2 = _infer(d2, boxes, [0.95, 0.9, 0.8])
    kept_d2.pred_boxes.clip((100, 100))  # what detector_postprocess then does
    assert kept_d2.pred_boxes.nonempty().sum() == 1  # one detection fewer


def test_full_forward_in_eval_mode():
    model = tiny_model().eval()
    model.test_score_thresh = 0.0
    batch = [{"image": torch.rand(3, 61, 77) * 255, "height": 122, "width": 154}]
    with torch.no_grad():
        out = model(batch)[0]["instances"]
    assert 0 < len(out) <= 100 and out.image_size == (122, 154)
    boxes = out.pred_boxes.tensor
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert (boxes[:, 2] <= 154).all() and (boxes[:, 3] <= 122).all()


def test_unknown_normaliser_is_named():
    with pytest.raises(ValueError, match="loss_normalizer"):
        tiny_model(loss_normalizer="mean")
