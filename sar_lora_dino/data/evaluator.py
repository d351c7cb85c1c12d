"""COCO evaluation of SARDet-100K-style JSON files (0-based ids, no info/licenses)."""

import contextlib
import io
import logging

from detectron2.evaluation import COCOEvaluator, fast_eval_api

__all__ = ["SARDetCOCOEvaluator"]

logger = logging.getLogger(__name__)


class SARDetCOCOEvaluator(COCOEvaluator):
    """
    detectron2's :class:`COCOEvaluator` with two guards for SARDet-100K-style ground truth:

    1. pycocotools records a match as the matched ground-truth annotation's id and tests it
       against 0, so a ground-truth box with ``id == 0`` can never count as detected. When the
       JSON holds such ids, every annotation id is shifted (in memory) so that all are >= 1.
    2. The fast evaluator needs detectron2's C++ ops; without them the official pycocotools
       implementation is used.

    0-based category ids and a JSON without ``info``/``licenses`` need nothing: the dataset's
    metadata maps ids 0..5 to themselves and pycocotools reads both keys with defaults.
    """

    def __init__(self, dataset_name, tasks=None, distributed=True, output_dir=None, **kwargs):
        """
        Args:
            dataset_name, tasks, distributed, output_dir, kwargs: as in :class:`COCOEvaluator`.
        """
        if getattr(fast_eval_api, "_C", None) is None:
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
