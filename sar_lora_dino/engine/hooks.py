"""Training hooks: periodic, best-by-metric and on-signal checkpoints."""

import logging
import math
import signal
import threading

from detectron2.engine import HookBase
from detectron2.utils import comm

from .trainer import rng_state

__all__ = [
    "BestCheckpointer",
    "CheckpointOnSignal",
    "PeriodicCheckpointer",
    "TrainingStopped",
    "save_state",
]

logger = logging.getLogger(__name__)


def save_state(trainer, checkpointer, name, iteration):
    """
    Save the training state after ``iteration`` as ``name.pth``, with the random states of
    every rank, then prune old periodic files (:meth:`TrainingCheckpointer.prune`). Every rank
    calls it (the states are gathered); rank 0 writes.
    """
    current = trainer.iter
    trainer.iter, trainer.gathered_rng = iteration, comm.all_gather(rng_state())
    try:
        if comm.is_main_process():
            checkpointer.save(name, iteration=iteration)
            checkpointer.prune()
    finally:
        trainer.iter, trainer.gathered_rng = current, None


class BestCheckpointer(HookBase):
    """
    Keep ``model_best.pth``: the weights of the evaluation with the best value of a metric.

    The engine calls :meth:`update` with each evaluation's flattened results. ``bbox/AP`` with
    several test datasets means the first one's (``<dataset>/bbox/AP``; the log says so). A
    missing or NaN metric is a warning. Unlike detectron2's hook of the same name it does not
    move ``last_checkpoint`` (``--resume`` continues from the latest state, not the best), and
    its best value is part of the trainer state.

    Args:
        checkpointer (TrainingCheckpointer): saves the file (rank 0 only writes).
        metric (str): key in the flattened results, e.g. "sardet100k_val/bbox/AP".
        mode (str): "max" or "min".
        file_prefix (str): file name without ".pth".
    """

    def __init__(self, checkpointer, metric="bbox/AP", mode="max", file_prefix="model_best"):
        if mode not in ("max", "min"):
            raise ValueError(f"train.best_checkpointer.mode must be 'max' or 'min', got {mode!r}")
        self._checkpointer = checkpointer
        self._metric = metric
        self._mode = mode
        self._file_prefix = file_prefix
        self._said_first = False
        self.best_metric = None
        self.best_iter = None

    def _key(self, flat, datasets):
        if self._metric in flat:
            return self._metric
        key = f"{datasets[0]}/{self._metric}" if len(datasets) > 1 else None
        if key in flat and not self._said_first:
            self._said_first = True
            logger.warning(
                f"train.best_checkpointer.metric={self._metric!r} with {len(datasets)} test "
                f"datasets: {key!r} (the first) selects model_best.pth. Name the dataset in "
                "the metric to choose another."
            )
        return key if key in flat else None

    def update(self, flat, iteration, datasets=()):
        """Consider the flattened results ``flat`` of the weights after ``iteration`` (of
        ``datasets``, in config order); return whether ``model_best.pth`` was written."""
        key = self._key(flat, datasets)
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
        best = self.best_metric
        if best is not None and (value <= best if self._mode == "max" else value >= best):
            logger.info(
                f"{key} = {value:.4f} at iteration {iteration}; best stays "
                f"{best:.4f} at iteration {self.best_iter}"
            )
            return False
        self.best_metric, self.best_iter = value, int(iteration)
        self._checkpointer.save(
            self._file_prefix,
            tag_last=False,
            model_only=True,
            iteration=self.best_iter,
            best_metric={key: value},
        )
        logger.info(
            f"New best {key} = {value:.4f} at iteration {iteration} (previous {best}); "
            f"saved {self._file_prefix}.pth"
        )
        return True

    def state_dict(self):
        return {"best_metric": self.best_metric, "best_iter": self.best_iter}

    def load_state_dict(self, state_dict):
        self.best_metric = state_dict.get("best_metric")
        self.best_iter = state_dict.get("best_iter")


class PeriodicCheckpointer(HookBase):
    """
    Save ``model_{iter:07d}.pth`` every ``period`` iterations and ``model_final.pth`` at the end,
    pruning as the checkpointer's ``max_to_keep`` says. Runs on every rank; rank 0 writes.
    """

    def __init__(self, checkpointer, period):
        self._checkpointer = checkpointer
        self._period = int(period)

    def before_train(self):
        if comm.is_main_process():
            self._checkpointer.prune()

    def after_step(self):
        iteration = self.trainer.iter
        final = iteration >= self.trainer.max_iter - 1
        if final or (self._period > 0 and (iteration + 1) % self._period == 0):
            name = "model_final" if final else f"model_{iteration:07d}"
            save_state(self.trainer, self._checkpointer, name, iteration)


class TrainingStopped(SystemExit):
    """Raised after :class:`CheckpointOnSignal` saved the state because a signal asked to stop."""


class CheckpointOnSignal(HookBase):
    """
    On SIGTERM (what job schedulers send before killing) or SIGINT (Ctrl-C), finish the current
    iteration, save a checkpoint that ``--resume`` continues from, and stop with
    :class:`TrainingStopped` (exit status 143 or 130). A second signal stops at once.
    All ranks stop at the same iteration, so DDP never waits for a departed rank.
    """

    def __init__(self, checkpointer):
        self._checkpointer = checkpointer
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
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def after_step(self):
        received = next((r for r in comm.all_gather(self._received) if r is not None), None)
        if received is None:
            return
        iteration = self.trainer.iter
        save_state(self.trainer, self._checkpointer, f"model_{iteration:07d}", iteration)
        comm.synchronize()
        raise TrainingStopped(128 + int(received))

    def after_train(self):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
