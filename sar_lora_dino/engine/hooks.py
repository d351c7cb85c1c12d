"""Training hooks: keep the best checkpoint by a validation metric, across resumes."""
import logging
import math

from detectron2.engine import HookBase

__all__ = ["BestCheckpointer"]

logger = logging.getLogger(__name__)


class BestCheckpointer(HookBase):
    """
    Save ``model_best.pth`` whenever a new evaluation improves a metric (e.g. "bbox/AP").

    Register it after the :class:`EvalHook` that writes the metric. Unlike detectron2's hook of
    the same name it does not move ``last_checkpoint`` (``--resume`` must continue from the
    latest state, not the best) and its best value is part of the trainer state, so a resumed run
    only replaces ``model_best.pth`` with something better.
    """

    def __init__(self, checkpointer, metric="bbox/AP", mode="max", file_prefix="model_best"):
        """
        Args:
            checkpointer (TrainingCheckpointer): saves the file (rank 0 only writes).
            metric (str): key of the metric in the event storage, e.g. "bbox/AP".
            mode (str): "max" or "min".
            file_prefix (str): file name without ".pth".
        """
        if mode not in ("max", "min"):
            raise ValueError(f"train.best_checkpointer.mode must be 'max' or 'min', got {mode!r}")
        self._checkpointer = checkpointer
        self._metric = metric
        self._mode = mode
        self._file_prefix = file_prefix
        self.best_metric = None
        self.best_iter = None
        self._last_seen_iter = None

    def _better(self, value):
        if self.best_metric is None:
            return True
        return value > self.best_metric if self._mode == "max" else value < self.best_metric

    def _check(self):
        latest = self.trainer.storage.latest().get(self._metric)
        if latest is None:
            return
        value, metric_iter = latest
        if metric_iter == self._last_seen_iter:
            return
        self._last_seen_iter = metric_iter
        if math.isnan(value) or math.isinf(value):
            logger.warning(f"{self._metric} is {value} at iteration {metric_iter}; not kept.")
            return
        if self._better(value):
            previous = self.best_metric
            self.best_metric, self.best_iter = float(value), int(metric_iter)
            self._checkpointer.save(
                self._file_prefix,
                tag_last=False,
                model_only=True,
                iteration=self.best_iter,
                best_metric={self._metric: self.best_metric},
            )
            logger.info(
                f"New best {self._metric} = {value:.4f} at iteration {metric_iter} "
                f"(previous {previous}); saved {self._file_prefix}.pth"
            )
        else:
            logger.info(
                f"{self._metric} = {value:.4f} at iteration {metric_iter}; best stays "
                f"{self.best_metric:.4f} at iteration {self.best_iter}"
            )

    def after_step(self):
        self._check()

    def after_train(self):
        self._check()

    def state_dict(self):
        return {"best_metric": self.best_metric, "best_iter": self.best_iter}

    def load_state_dict(self, state_dict):
        self.best_metric = state_dict.get("best_metric")
        self.best_iter = state_dict.get("best_iter")
