"""RetinaNet with the original's loss normaliser and pre-NMS box handling as switches."""

import logging

import torch
from detectron2.layers import batched_nms, cat
from detectron2.modeling import RetinaNet
from detectron2.modeling.box_regression import _dense_box_regression_loss
from detectron2.utils.events import get_event_storage
from fvcore.nn import sigmoid_focal_loss
from torch.nn import functional as F

__all__ = ["MMDetRetinaNet"]

_LOSS_NORMALIZERS = ("batch", "ema")
# detectron2's EMA start value (``RetinaNet.losses``); a run without a saved EMA starts there
_EMA_START = 100.0
logger = logging.getLogger(__name__)


class MMDetRetinaNet(RetinaNet):
    """
    detectron2's :class:`RetinaNet` that, by default, computes what the original
    (MMDetection RetinaNet) computes; each difference is a constructor switch.

    * ``loss_normalizer``: "batch" divides both losses by the batch's positive anchor count
      (summed per image, each image counting at least 1, as MMDetection's ``avg_factor``),
      with no state, so resuming changes nothing. "ema" is detectron2's moving average
      (starts at 100, momentum 0.9), kept in the buffer ``loss_normalizer_ema`` so that it is
      checkpointed and a resumed run continues it; a checkpoint without it (saved before it was
      kept) loads with a warning and the average restarts at 100.
    * The focal loss runs eagerly, not as detectron2's TorchScript function, whose first calls
      (profiling) and later ones (optimised graph) differ in the last bit: a resumed run would
      not repeat an uninterrupted one exactly. The "ema" path is detectron2's code, run with the
      TorchScript optimiser off for the same reason.
    * ``clip_before_nms``: clip decoded boxes to the image before NMS (the original), rather
      than after it in ``detector_postprocess`` (detectron2).
    * ``drop_empty_before_nms``: drop boxes with zero width or height before NMS and the
      ``max_detections_per_image`` cut (the original); detectron2 drops them afterwards and
      may return fewer detections.

    Parameters and their names are detectron2's: this class adds none (and a buffer only with
    "ema").
    """

    # filled with a warning when a checkpoint lacks them (strict loaders accept their absence)
    optional_state_keys = ("loss_normalizer_ema",)

    def __init__(
        self,
        *,
        loss_normalizer: str = "batch",
        clip_before_nms: bool = True,
        drop_empty_before_nms: bool = True,
        **kwargs,
    ):
        """``kwargs`` are detectron2's :class:`RetinaNet` arguments; the switches: see above."""
        super().__init__(**kwargs)
        if loss_normalizer not in _LOSS_NORMALIZERS:
            raise ValueError(
                f"MMDetRetinaNet loss_normalizer must be one of {_LOSS_NORMALIZERS}, "
                f"got {loss_normalizer!r}"
            )
        # Not `self.loss_normalizer`: detectron2 keeps its EMA value under that name.
        self.loss_normalizer_mode = loss_normalizer
        self.clip_before_nms = clip_before_nms
        self.drop_empty_before_nms = drop_empty_before_nms
        if loss_normalizer == "ema":
            # float64 holds detectron2's python float exactly
            self.register_buffer(
                "loss_normalizer_ema", torch.tensor(_EMA_START, dtype=torch.float64)
            )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "loss_normalizer_ema"
        if self.loss_normalizer_mode == "ema" and key not in state_dict:
            logger.warning(
                f"The weights have no {key!r} (the EMA of the positive-anchor count, saved "
                f"since it is checkpointed); it restarts at {_EMA_START:g} as in a new run."
            )
            state_dict[key] = torch.tensor(_EMA_START, dtype=torch.float64)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def losses(self, anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes):
        """:meth:`RetinaNet.losses`, with the normaliser of ``loss_normalizer``."""
        if self.loss_normalizer_mode == "ema":
            self.loss_normalizer = float(self.loss_normalizer_ema)  # what detectron2 updates
            with torch.jit.optimized_execution(False):
                losses = super().losses(
                    anchors, pred_logits, gt_labels, pred_anchor_deltas, gt_boxes
                )
            self.loss_normalizer_ema.fill_(self.loss_normalizer)
            return losses
        gt_labels = torch.stack(gt_labels)  # (N, R)
        valid_mask = gt_labels >= 0
        pos_mask = valid_mask & (gt_labels != self.num_classes)
        pos_per_image = pos_mask.sum(dim=1)
        get_event_storage().put_scalar(
            "num_pos_anchors", pos_per_image.sum().item() / len(pos_per_image)
        )
        normalizer = pos_per_image.clamp(min=1).sum().item()

        # One-hot over K + 1 labels; the last (background) column carries no loss.
        targets = F.one_hot(gt_labels[valid_mask], num_classes=self.num_classes + 1)[:, :-1]
        loss_cls = sigmoid_focal_loss(
            cat(pred_logits, dim=1)[valid_mask],
            targets.to(pred_logits[0].dtype),
            alpha=self.focal_loss_alpha,
            gamma=self.focal_loss_gamma,
            reduction="sum",
        )
        loss_box_reg = _dense_box_regression_loss(
            anchors,
            self.box2box_transform,
            pred_anchor_deltas,
            gt_boxes,
            pos_mask,
            box_reg_loss_type=self.box_reg_loss_type,
            smooth_l1_beta=self.smooth_l1_beta,
        )
        return {"loss_cls": loss_cls / normalizer, "loss_box_reg": loss_box_reg / normalizer}

    def inference_single_image(self, anchors, box_cls, box_delta, image_size):
        """:meth:`RetinaNet.inference_single_image`, with the pre-NMS clip and empty-box drop."""
        pred = self._decode_multi_level_predictions(
            anchors,
            box_cls,
            box_delta,
            self.test_score_thresh,
            self.test_topk_candidates,
            image_size,
        )
        if self.clip_before_nms:
            pred.pred_boxes.clip(image_size)
        if self.drop_empty_before_nms:
            pred = pred[pred.pred_boxes.nonempty()]
        keep = batched_nms(
            pred.pred_boxes.tensor, pred.scores, pred.pred_classes, self.test_nms_thresh
        )
        return pred[keep[: self.max_detections_per_image]]


SARRetinaNet = MMDetRetinaNet  # deprecated alias (saved configs)
