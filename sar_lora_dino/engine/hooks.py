"""Training hooks: periodic, best-by-metric and on-signal checkpoints."""

import logging
import math
import signal
import threading

from detectron2.engine import HookBase
from detectron2.utils import comm

from .checkpointing import prune_checkpoints
from .trainer import rng_state

__all__ = ["BestCheckpointer", "CheckpointOnSignal", "PeriodicCheckpointer", "TrainingStopped"]

logger = logging.getLogger(__name__)


class BestCheckpointer(HookBase):
    """
    Keep ``model_best.pth``: the weights of the evaluation with the best value of a metric.

    The engine calls :meth:`update` with each evaluation's results. The metric is a key of the
    flattened results: ``bbox/AP`` for one test dataset, ``<dataset>/bbox/AP`` for several (a
    bare ``bbox/AP`` then means the first dataset, and the log says so). A missing or NaN
    metric is a warning, never silently ignored. Unlike detectron2's hook of the same name it
    does not move ``last_checkpoint`` (``--resume`` continues from the latest state, not the
    best), and its best value is part of the trainer state, so a resumed run only replaces
    ``model_best.pth`` with something better.
    """

    def __init__(self, checkpointer, metric="bbox/AP", mode="max", file_prefix="model_best"):
        """
        Args:
            checkpointer (TrainingCheckpointer): saves the file (rank 0 only writes).
            metric (str): key of the metric in the flattened results, e.g. "bbox/AP" or
                "sardet100k_val/bbox/AP".
            mode (str): "max" or "min".
            file_prefix (str): file name without ".pth".
        """
        if mode not in ("max", "min"):
            raise ValueError(f"train.best_checkpointer.mode must be 'max' or 'min', got {mode!r}")
        self._checkpointer = checkpointer
        self._metric = metric
        self._mode = mode
        self._file_prefix = file_prefix
        self._said = set()
        self.best_metric = None
        self.best_iter = None

    def _better(self, value):
        if self.best_metric is None:
            return True
        return value > self.best_metric if self._mode == "max" else value < self.best_metric

    def _once(self, message):
        if message not in self._said:
            self._said.add(message)
            logger.warning(message)

    def resolve_key(self, flat, datasets=()):
        """
        Args:
            flat (dict): flattened results (``{"bbox/AP": ...}`` or ``{"ds/bbox/AP": ...}``).
            datasets (list[str]): the evaluated datasets, in config order.

        Returns:
            str or None: the key that selects the best checkpoint.
        """
        if self._metric in flat:
            return self._metric
        if len(datasets) > 1 and f"{datasets[0]}/{self._metric}" in flat:
            key = f"{datasets[0]}/{self._metric}"
            self._once(
                f"train.best_checkpointer.metric={self._metric!r} with {len(datasets)} test "
                f"datasets: {key!r} (the first) selects model_best.pth. Name the dataset in "
                "the metric to choose another."
            )
            return key
        return None

    def update(self, flat, iteration, datasets=()):
        """
        Consider one evaluation.

        Args:
            flat (dict): flattened evaluation results (``flatten_results_dict``).
            iteration (int): the iteration whose weights were evaluated.
            datasets (list[str]): the evaluated datasets.

        Returns:
            bool: whether ``model_best.pth`` was written.
        """
        key = self.resolve_key(flat, datasets)
        if key is None:
            logger.warning(
                f"train.best_checkpointer.metric={self._metric!r} is not among the evaluation "
                f"results at iteration {iteration} ({sorted(flat)[:12]}); model_best.pth is "
                "not updated."
            )
            return False
        value = float(flat[key])
        if math.isnan(value) or math.isinf(value):
            logger.warning(
                f"{key} is {value} at iteration {iteration} (no detection above the score "
                "threshold?); model_best.pth is not updated."
            )
            return False
        if not self._better(value):
            logger.info(
                f"{key} = {value:.4f} at iteration {iteration}; best stays "
                f"{self.best_metric:.4f} at iteration {self.best_iter}"
            )
            return False
        previous = self.best_metric
        self.best_metric, self.best_iter = value, int(iteration)
        self._checkpointer.save(
            self._file_prefix,
            tag_last=False,
            model_only=True,
            iteration=self.best_iter,
            best_metric={key: self.best_metric},
        )
        logger.info(
            f"New best {key} = {value:.4f} at iteration {iteration} (previous {previous}); "
            f"saved {self._file_prefix}.pth"
        )
        return True

    def state_dict(self):
        return {"best_metric": self.best_metric, "best_iter": self.best_iter}

    def load_state_dict(self, state_dict):
        self.best_metric = state_dict.get("best_metric")
        self.best_iter = state_dict.get("best_iter")


def _gather_rng(trainer):
    """Collect every rank's random state into the trainer before rank 0 saves it."""
    states = comm.all_gather(rng_state()) if comm.get_world_size() > 1 else [rng_state()]
    trainer.gathered_rng = states


class PeriodicCheckpointer(HookBase):
    """
    Save ``model_{iter:07d}.pth`` every ``period`` iterations and ``model_final.pth`` at the end,
    then keep only the newest ``max_to_keep`` periodic files in the folder (counting those of
    earlier runs that were resumed and SIGTERM checkpoints). Runs on every rank (the random states
    of all ranks go into the file); rank 0 writes.
    """

    def __init__(self, checkpointer, period, max_to_keep=None):
        """
        Args:
            checkpointer (TrainingCheckpointer): saves the files.
            period (int): iterations between checkpoints.
            max_to_keep (int or None): periodic files kept; None or 0 keeps all.
        """
        self._checkpointer = checkpointer
        self._period = int(period)
        self._max_to_keep = max_to_keep

    def before_train(self):
        if comm.is_main_process():
            self.prune()

    def prune(self):
        removed = prune_checkpoints(self._checkpointer.save_dir, self._max_to_keep)
        if removed:
            logger.info(f"Removed old checkpoints (max_to_keep={self._max_to_keep}): {removed}")

    def after_step(self):
        iteration = self.trainer.iter
        final = iteration >= self.trainer.max_iter - 1
        if not final and (self._period <= 0 or (iteration + 1) % self._period):
            return
        _gather_rng(self.trainer)
        if comm.is_main_process():
            name = "model_final" if final else f"model_{iteration:07d}"
            self._checkpointer.save(name, iteration=iteration)
            self.prune()
        self.trainer.gathered_rng = None


class TrainingStopped(SystemExit):
    """Raised after :class:`CheckpointOnSignal` saved the state because a signal asked to stop."""


class CheckpointOnSignal(HookBase):
    """
    On SIGTERM (what job schedulers send before killing) or SIGINT (Ctrl-C), finish the current
    iteration, save a checkpoint that ``--resume`` continues from, and stop with
    :class:`TrainingStopped` (exit status 143 or 130). A second signal stops at once.

    All ranks agree on stopping at the same iteration, so DDP never waits for a departed rank.
    """

    def __init__(self, checkpointer, signals=(signal.SIGTERM, signal.SIGINT), max_to_keep=None):
        """
        Args:
            checkpointer (TrainingCheckpointer): saves the state (rank 0 writes).
            signals (tuple[int]): the signals to handle.
            max_to_keep (int or None): prune periodic files as :class:`PeriodicCheckpointer`.
        """
        self._checkpointer = checkpointer
        self._max_to_keep = max_to_keep
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
        _gather_rng(self.trainer)
        if comm.is_main_process():
            self._checkpointer.save(f"model_{iteration:07d}", iteration=iteration)
            prune_checkpoints(self._checkpointer.save_dir, self._max_to_keep)
        comm.synchronize()
        raise TrainingStopped(128 + int(received))

    def after_train(self):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
