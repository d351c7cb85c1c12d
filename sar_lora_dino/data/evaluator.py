"""COCO evaluation of SARDet-100K-style JSON (0-based ids, no info/licenses), fast by default."""

import contextlib
import importlib.util
import io
import json
import logging
import os
import sys

import numpy as np
from detectron2.evaluation import COCOEvaluator, coco_evaluation
from detectron2.structures import BoxMode

from sar_lora_dino.utils.io import atomic_write

from .box_cocoeval import BoxCOCOeval

__all__ = ["ShiftedIdCOCOEvaluator", "native_fast_eval_available", "ensure_fast_coco_eval"]

logger = logging.getLogger(__name__)

_FAST_EVAL_MODULE = "detectron2.evaluation.fast_eval_api"


def native_fast_eval_available() -> bool:
    """Whether detectron2's COCO evaluator uses its own C++ ``COCOeval_opt``: read from the
    loaded modules, never importing ``fast_eval_api`` (on detectron2 main it imports ``_C``)."""
    module = sys.modules.get(_FAST_EVAL_MODULE)
    if module is None or getattr(module, "_C", None) is None:
        return False
    return coco_evaluation.COCOeval_opt is getattr(module, "COCOeval_opt", None)


def ensure_fast_coco_eval() -> bool:
    """
    Without detectron2's C++ ops, point ``coco_evaluation.COCOeval_opt`` at faster-coco-eval's
    ``COCOeval_faster`` (pycocotools' algorithm in C++). Not ``init_as_pycocotools()``: it
    replaces pycocotools process-wide, and ``use_fast_impl=False`` must stay the reference.

    Returns:
        bool: whether a fast exact evaluator is in place; if not, use ``use_fast_impl=False``.
    """
    if native_fast_eval_available():
        return True
    if importlib.util.find_spec("faster_coco_eval") is None:
        return False
    from faster_coco_eval import COCOeval_faster

    if coco_evaluation.COCOeval_opt is not COCOeval_faster:
        coco_evaluation.COCOeval_opt = COCOeval_faster
        logger.info(
            "detectron2 has no C++ COCO evaluator; using faster_coco_eval.COCOeval_faster "
            "(use_fast_impl=False selects pycocotools)"
        )
    return True


class ShiftedIdCOCOEvaluator(COCOEvaluator):
    """
    detectron2's :class:`COCOEvaluator` with two guards for SARDet-100K-style ground truth:

    1. pycocotools records a match as the matched ground-truth annotation's id and tests it
       against 0, so a ground-truth box with ``id == 0`` can never count as detected. When the
       JSON holds such ids, every annotation id is shifted (in memory) so that all are >= 1.
    2. ``use_fast_impl=True`` (the default) evaluates boxes alone on arrays (:class:`BoxCOCOeval`)
       and other tasks with detectron2's C++ evaluator, else faster-coco-eval (see
       :func:`ensure_fast_coco_eval`), else pycocotools. ``use_fast_impl=False`` is
       pycocotools, the reference; all give identical AP.

    0-based category ids and a JSON without ``info``/``licenses`` need nothing: the metadata
    maps ids 0..5 to themselves and pycocotools reads both keys with defaults.
    """

    def __init__(self, dataset_name, tasks=None, distributed=True, output_dir=None, **kwargs):
        if kwargs.get("use_fast_impl", True) and not ensure_fast_coco_eval():
            logger.warning(
                "No fast COCO evaluator (detectron2 C++ ops or faster-coco-eval); using "
                "pycocotools, which takes minutes on SARDet-100K val"
            )
            kwargs["use_fast_impl"] = False
        super().__init__(dataset_name, tasks, distributed, output_dir, **kwargs)
        anns = self._coco_api.dataset.get("annotations", [])
        min_id = min((a["id"] for a in anns), default=1)
        if min_id < 1:
            offset = 1 - min_id
            for ann in anns:
                ann["id"] += offset
            with contextlib.redirect_stdout(io.StringIO()):
                self._coco_api.createIndex()
            logger.info(
                f"Annotation ids of {self._metadata.json_file} start at {min_id}; shifted by "
                f"{offset} for evaluation (pycocotools cannot match a ground truth with id 0)."
            )

    def process(self, inputs, outputs):
        """Boxes only, ``use_fast_impl`` and the default ``maxDets``: keep each image's boxes as
        arrays (the values of ``instances_to_coco_json``); otherwise the parent's ``process``."""
        tasks, not_boxes = self._tasks, ("pred_masks", "pred_keypoints")
        if (
            not self._use_fast_impl
            or (tasks is not None and set(tasks) != {"bbox"})
            or list(self._max_dets_per_image) != [1, 10, 100]
            or any("proposals" in o or any(map(o["instances"].has, not_boxes)) for o in outputs)
        ):
            return super().process(inputs, outputs)
        for inp, out in zip(inputs, outputs):
            inst = out["instances"].to(self._cpu_device)
            xywh = BoxMode.convert(inst.pred_boxes.tensor, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
            arrays = {
                "bbox": xywh.numpy(),
                "score": inst.scores.numpy().copy(),
                "category": inst.pred_classes.numpy().astype(np.int64),
            }
            self._predictions.append({"image_id": inp["image_id"], "instances": arrays})

    def _eval_predictions(self, predictions, img_ids=None):
        """Array-form boxes go to :class:`BoxCOCOeval` (no per-detection dicts, no ``loadRes``);
        the results JSON has detectron2's text. Anything else goes to the parent."""
        if not all(isinstance(p.get("instances"), dict) for p in predictions):
            if any(isinstance(p.get("instances"), dict) for p in predictions):
                raise ValueError("predictions mix array-form and detectron2-form instances")
            return super()._eval_predictions(predictions, img_ids=img_ids)
        insts = [p["instances"] for p in predictions]
        counts = [len(i["score"]) for i in insts]
        image_id = np.repeat(np.asarray([p["image_id"] for p in predictions], np.int64), counts)
        bbox = np.concatenate([i["bbox"] for i in insts]).reshape(-1, 4)
        score = np.concatenate([i["score"] for i in insts])
        category = np.concatenate([i["category"] for i in insts])
        id_map = self._metadata.get("thing_dataset_id_to_contiguous_id")
        if id_map is not None:
            num_classes = len(id_map)
            if len(category) and (category.min() < 0 or category.max() >= num_classes):
                raise ValueError(
                    f"A prediction has class={int(category.max())}, but the dataset only has "
                    f"{num_classes} classes (ids 0..{num_classes - 1})"
                )
            reverse = np.zeros(num_classes, np.int64)
            for dataset_id, contiguous in id_map.items():
                reverse[contiguous] = dataset_id
            category = reverse[category]
        if self._output_dir:
            path = os.path.join(self._output_dir, "coco_instances_results.json")
            self._logger.info(f"Saving results to {path}")
            columns = (image_id.tolist(), category.tolist(), bbox.tolist(), score.tolist())
            rows = [
                {"image_id": i, "category_id": c, "bbox": b, "score": s}
                for i, c, b, s in zip(*columns)
            ]
            atomic_write(path, lambda f: f.write(json.dumps(rows)), mode="w")
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return
        coco_eval = None
        if len(score):
            coco_eval = BoxCOCOeval.from_arrays(self._coco_api, image_id, category, bbox, score)
            coco_eval.params.maxDets = [1, 10, 100]
            if img_ids is not None:
                coco_eval.params.imgIds = img_ids
            with contextlib.redirect_stdout(io.StringIO()):
                coco_eval.evaluate()
                coco_eval.accumulate()
            coco_eval.summarize()
        classes = self._metadata.get("thing_classes")
        self._results["bbox"] = self._derive_coco_results(coco_eval, "bbox", class_names=classes)


SARDetCOCOEvaluator = ShiftedIdCOCOEvaluator  # deprecated alias (saved configs)
