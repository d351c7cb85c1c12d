"""Training hooks: the best checkpoint by a validation metric, and a checkpoint on SIGTERM."""

import logging
import math
import signal
import threading

from detectron2.engine import HookBase
from detectron2.utils import comm

__all__ = ["BestCheckpointer", "CheckpointOnSignal", "TrainingStopped"]

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


class TrainingStopped(SystemExit):
    """Raised after :class:`CheckpointOnSignal` saved the state because a signal asked to stop."""


class CheckpointOnSignal(HookBase):
    """
    On SIGTERM (what job schedulers send before killing) or SIGINT (Ctrl-C), finish the current
    iteration, save a checkpoint that ``--resume`` continues from, and stop with
    :class:`TrainingStopped` (exit status 143 or 130). A second signal stops at once.

    All ranks agree on stopping at the same iteration, so DDP never waits for a departed rank.
    """

    def __init__(self, checkpointer, signals=(signal.SIGTERM, signal.SIGINT)):
        """
        Args:
            checkpointer (TrainingCheckpointer): saves the state (rank 0 writes).
            signals (tuple[int]): the signals to handle.
        """
        self._checkpointer = checkpointer
        self._signals = tuple(signals)
        self._previous = {}
        self._received = None

    def _handle(self, signum, frame):
        if self._received is not None:  # asked twice: stop now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            raise KeyboardInterrupt(f"signal {signum} received twice")
        self._received = signum
        logger.warning(f"Signal {signum}: saving a checkpoint after this iteration, then stopping.")

    def before_train(self):
        if threading.current_thread() is not threading.main_thread():
            logger.warning("Not in the main thread: SIGTERM/SIGINT will not save a checkpoint.")
            return
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._handle)

    def after_step(self):
        received = self._received
        if comm.get_world_size() > 1:
            received = next((r for r in comm.all_gather(received) if r is not None), None)
        if received is None:
            return
        iteration = self.trainer.iter
        self._checkpointer.save(f"model_{iteration:07d}", iteration=iteration)
        comm.synchronize()
        raise TrainingStopped(128 + int(received))

    def after_train(self):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
