"""The training step: mixed precision (fp16/bf16, loss scaling), clipping, non-finite losses."""

import contextlib
import logging
import random
import time

import numpy as np
import torch
import torch.distributed as dist
from detectron2.engine import SimpleTrainer
from detectron2.utils import comm

__all__ = [
    "MixedPrecisionTrainer",
    "AMP_DTYPES",
    "DataLoadingError",
    "NonFiniteLossError",
    "rng_preserved",
    "rng_state",
    "set_rng_state",
]

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss stayed NaN/inf for too many consecutive iterations."""


class DataLoadingError(RuntimeError):
    """Another process of the run could not load its share of the batch."""


def rng_state():
    """The python, numpy, torch (and CUDA) random states, as ``torch.load(weights_only=True)``
    reads them back (plain lists and tensors)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def rng_preserved():
    """Run the body without changing the global random states."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def _on_any_rank(flag):
    """Whether ``flag`` (a bool or a one-element tensor) holds on any process: one all-reduce."""
    flag = torch.as_tensor(flag, dtype=torch.int32).reshape(1)
    if comm.get_world_size() > 1:
        nccl = dist.get_backend() == "nccl"
        flag = flag.to(torch.device("cuda", torch.cuda.current_device()) if nccl else "cpu")
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


# v0.6 needs this (its AMPTrainer is fp16-only); detectron2 main's AMPTrainer has bf16
# (precision=) but requires CUDA and has no gradient clipping.
class MixedPrecisionTrainer(SimpleTrainer):
    """
    A :class:`SimpleTrainer` whose step runs under autocast with an optional loss scaler,
    clips the global gradient norm, and skips a step whose loss is not finite (logged); after
    ``max_nonfinite`` such steps in a row it stops, naming the iteration and the loss terms.

    A batch that cannot be loaded (e.g. a corrupt image) stops every process, not only the one
    that read it: each iteration, before the forward, the processes agree whether all got their
    batch (one small all-reduce). Then :attr:`on_data_error` runs on every rank with the
    failures, the failing rank raises its error and the others a :class:`DataLoadingError`.

    Its state adds the loss scaler, the data loader's position and the random states of every
    rank, so ``--resume`` continues exactly.

    Args:
        model, data_loader, optimizer: as in :class:`SimpleTrainer`.
        amp_enabled (bool): ``train.amp.enabled``.
        amp_dtype (str): ``train.amp.dtype``, "float16" (CUDA only: float32 with a warning on
            a CPU) or "bfloat16".
        grad_scaler (bool or None): ``train.amp.grad_scaler``; None: only for float16.
        clip_grad (dict or None): ``train.clip_grad``, ``dict(max_norm=..., norm_type=2.0)``.
        device (str or torch.device): the device the model runs on.
        max_nonfinite (int): ``train.max_nonfinite_steps``.
    """

    def __init__(
        self,
        model,
        data_loader,
        optimizer,
        *,
        amp_enabled=False,
        amp_dtype="float16",
        grad_scaler=None,
        clip_grad=None,
        device="cuda",
        max_nonfinite=10,
    ):
        super().__init__(model, data_loader, optimizer)
        if amp_dtype not in AMP_DTYPES:
            raise ValueError(
                f"train.amp.dtype must be one of {sorted(AMP_DTYPES)}, got {amp_dtype!r}"
            )
        if clip_grad is not None and "max_norm" not in clip_grad:
            raise ValueError(f"train.clip_grad must be None or dict(max_norm=...), got {clip_grad}")
        self.device_type = torch.device(device).type
        self.amp_dtype = AMP_DTYPES[amp_dtype]
        if amp_enabled and self.device_type != "cuda" and self.amp_dtype == torch.float16:
            logger.warning(
                "train.amp.enabled with float16 needs CUDA; training in float32 on the "
                f"{self.device_type}. train.amp.dtype=bfloat16 runs mixed precision there."
            )
            amp_enabled = False
        self.amp_enabled = bool(amp_enabled)
        if grad_scaler is None:
            grad_scaler = self.amp_dtype == torch.float16
        self.grad_scaler = (
            torch.amp.GradScaler(self.device_type) if self.amp_enabled and grad_scaler else None
        )
        self.clip_grad = dict(clip_grad) if clip_grad is not None else None
        self.max_nonfinite = int(max_nonfinite)
        self.nonfinite_in_a_row = 0
        # set by the engine: called on every rank with [(rank, message)] when a batch fails
        self.on_data_error = None
        # set by the checkpoint hooks on every rank before rank 0 saves
        self.gathered_rng = None
        if self.amp_enabled:
            scaler = "with" if self.grad_scaler is not None else "without"
            logger.info(
                f"Mixed precision: {amp_dtype} autocast on {self.device_type}, {scaler} "
                "loss scaling"
            )

    def _next_batch(self):
        try:
            data, error = next(self._data_loader_iter), None
        except StopIteration:
            raise
        except Exception as e:
            data, error = None, e
        # [(rank, message)] of the processes whose batch failed, the same list on every rank
        message = f"{type(error).__name__}: {error}" if error is not None else None
        if not _on_any_rank(message is not None):
            return data
        failures = [(r, m) for r, m in enumerate(comm.all_gather(message)) if m is not None]
        if error is None and hasattr(self.data_loader, "unread_last_batch"):
            self.data_loader.unread_last_batch()  # the saved position is before this batch
        if self.on_data_error is not None:
            self.on_data_error(failures)
        if error is not None:
            raise error
        rank, message = failures[0]
        raise DataLoadingError(
            f"Iteration {self.iter}: rank {rank} could not load its training batch, so every "
            f"process stops: {message}"
        )

    def run_step(self):
        assert self.model.training, "[MixedPrecisionTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = self._next_batch()
        data_time = time.perf_counter() - start

        # Freed before the forward, not after it: the last step's gradients would otherwise
        # stay alive through the forward, at the activations' peak.
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device_type, dtype=self.amp_dtype, enabled=self.amp_enabled):
            loss_dict = self.model(data)
            if isinstance(loss_dict, torch.Tensor):
                loss_dict = {"total_loss": loss_dict}
            losses = sum(loss_dict.values())

        if _on_any_rank(~torch.isfinite(losses.detach()).all()):
            self._skip_nonfinite(loss_dict)
            return
        self.nonfinite_in_a_row = 0
        if self.grad_scaler is not None:
            self.grad_scaler.scale(losses).backward()
        else:
            losses.backward()
        self._write_metrics(loss_dict, data_time)

        if self.clip_grad is not None:
            if self.grad_scaler is not None:
                self.grad_scaler.unscale_(self.optimizer)
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, **self.clip_grad)  # skips no-grads
            self.storage.put_scalar("grad_norm", float(grad_norm))

        if self.grad_scaler is not None:
            scale = self.grad_scaler.get_scale()
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
            new_scale = self.grad_scaler.get_scale()
            self.storage.put_scalar("loss_scale", new_scale, smoothing_hint=False)
            if new_scale < scale:
                logger.warning(
                    f"Iteration {self.iter}: non-finite gradients; the loss scaler skipped the "
                    f"step and lowered the scale from {scale:g} to {new_scale:g}."
                )
        else:
            self.optimizer.step()

    def _skip_nonfinite(self, loss_dict):
        self.nonfinite_in_a_row += 1
        terms = {k: float(v.detach().float().cpu()) for k, v in loss_dict.items()}
        bad = sorted(k for k, v in terms.items() if not np.isfinite(v))
        self.storage.put_scalar(
            "nonfinite_loss_steps", self.nonfinite_in_a_row, smoothing_hint=False
        )
        if self.nonfinite_in_a_row >= self.max_nonfinite:
            raise NonFiniteLossError(
                f"The loss was NaN/inf for {self.nonfinite_in_a_row} iterations in a row, the "
                f"last at iteration {self.iter}: non-finite terms {bad} (all terms: {terms}). "
                "The weights were not updated by those steps; the last periodic checkpoint and "
                "model_best.pth are kept. Lower the learning rate or set train.clip_grad."
            )
        logger.warning(
            f"Iteration {self.iter}: non-finite loss in {bad} ({terms}); step skipped "
            f"({self.nonfinite_in_a_row} in a row, stop at {self.max_nonfinite})."
        )

    def state_dict(self):
        ret = super().state_dict()
        if self.grad_scaler is not None:
            ret["grad_scaler"] = self.grad_scaler.state_dict()
        if hasattr(self.data_loader, "state_dict"):
            ret["data_loader"] = self.data_loader.state_dict()
        ret["rng"] = self.gathered_rng if self.gathered_rng is not None else [rng_state()]
        ret["nonfinite_in_a_row"] = self.nonfinite_in_a_row
        ret["torch_threads"] = torch.get_num_threads()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if self.grad_scaler is not None:
            if "grad_scaler" in state_dict:
                self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
            else:
                logger.warning("The checkpoint has no loss-scaler state; the scale restarts.")
        if "data_loader" in state_dict and hasattr(self.data_loader, "load_state_dict"):
            self.data_loader.load_state_dict(state_dict["data_loader"])
        elif hasattr(self.data_loader, "load_state_dict"):
            logger.warning("The checkpoint has no data-loader position; the data order restarts.")
        states = state_dict.get("rng") or []
        rank = comm.get_rank()
        if rank < len(states):
            set_rng_state(states[rank])
        elif states:
            logger.warning(f"The checkpoint holds no random state for rank {rank}.")
        self.nonfinite_in_a_row = int(state_dict.get("nonfinite_in_a_row", 0))
        threads = state_dict.get("torch_threads")
        if threads is not None and threads != torch.get_num_threads() and self.device_type == "cpu":
            logger.warning(
                f"The checkpoint was written by a process with {threads} torch CPU thread(s); "
                f"this one has {torch.get_num_threads()}. CPU reductions then add in another "
                "order: the resumed run is close to, not bit-identical with, an uninterrupted "
                f"one. OMP_NUM_THREADS={threads} (or torch.set_num_threads) makes it exact."
            )
