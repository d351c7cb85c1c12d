"""COCO evaluation of SARDet-100K-style JSON (0-based ids, no info/licenses), fast by default."""

import contextlib
import importlib.util
import io
import logging
import sys

from detectron2.evaluation import COCOEvaluator, coco_evaluation

__all__ = ["ShiftedIdCOCOEvaluator", "native_fast_eval_available", "ensure_fast_coco_eval"]

logger = logging.getLogger(__name__)

_FAST_EVAL_MODULE = "detectron2.evaluation.fast_eval_api"


def native_fast_eval_available() -> bool:
    """
    Whether detectron2's own C++ ``COCOeval_opt`` is what its COCO evaluator uses.

    Decided from what is loaded, never from a version, and without importing
    ``detectron2.evaluation.fast_eval_api`` (on detectron2 main it imports the C++ ``_C`` at
    module level): ``detectron2.evaluation`` has already imported it or, on main, fallen back
    to pycocotools when it failed.
    """
    module = sys.modules.get(_FAST_EVAL_MODULE)
    if module is None or getattr(module, "_C", None) is None:
        return False
    return coco_evaluation.COCOeval_opt is getattr(module, "COCOeval_opt", None)


def ensure_fast_coco_eval() -> bool:
    """
    Make ``use_fast_impl=True`` evaluation exact and fast when detectron2 has no C++ ops.

    Without detectron2's native evaluator, ``coco_evaluation.COCOeval_opt`` (the class
    :class:`COCOEvaluator` uses when ``use_fast_impl=True``) is set to faster-coco-eval's
    ``COCOeval_faster``, the same algorithm with its per-image matching and accumulation in
    C++; ``use_fast_impl=False`` keeps pycocotools as the reference. faster-coco-eval's
    ``init_as_pycocotools()`` is not used: it replaces pycocotools process-wide.

    Returns:
        bool: True if a fast exact evaluator is in place (native or faster-coco-eval); False
        if neither is available, in which case the caller must pass ``use_fast_impl=False``.
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
    2. ``use_fast_impl=True`` (the default) uses detectron2's C++ evaluator when it is built,
       otherwise faster-coco-eval (see :func:`ensure_fast_coco_eval`), otherwise pycocotools.
       ``use_fast_impl=False`` is pycocotools, the reference; both give identical AP.

    0-based category ids and a JSON without ``info``/``licenses`` need nothing: the dataset's
    metadata maps ids 0..5 to themselves and pycocotools reads both keys with defaults.
    """

    def __init__(self, dataset_name, tasks=None, distributed=True, output_dir=None, **kwargs):
        """
        Args:
            dataset_name, tasks, distributed, output_dir, kwargs: as in :class:`COCOEvaluator`.
        """
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


SARDetCOCOEvaluator = ShiftedIdCOCOEvaluator  # deprecated alias (saved configs)
