"""The training step: optional mixed precision (fp16 or bf16) and optional gradient clipping."""

import logging
import time

import torch
from detectron2.engine import SimpleTrainer

__all__ = ["MixedPrecisionTrainer", "AMP_DTYPES"]

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
logger = logging.getLogger(__name__)


# v0.6 needs this (its AMPTrainer is fp16-only); detectron2 main's AMPTrainer has bf16
# (precision=) but requires CUDA and has no gradient clipping.
class MixedPrecisionTrainer(SimpleTrainer):
    """
    A :class:`SimpleTrainer` whose step can run under CUDA autocast in float16 (with a gradient
    scaler) or bfloat16 (no scaler needed), and can clip the global gradient norm.

    Mixed precision is a CUDA feature here: on a CPU device the step runs in float32 and says so
    once, so the same config trains on a machine without a GPU.
    """

    def __init__(
        self,
        model,
        data_loader,
        optimizer,
        *,
        amp_enabled=False,
        amp_dtype="float16",
        clip_grad=None,
        device="cuda",
    ):
        """
        Args:
            model, data_loader, optimizer: as in :class:`SimpleTrainer`.
            amp_enabled (bool): run forward/loss under autocast (config ``train.amp.enabled``).
            amp_dtype (str): "float16" or "bfloat16" (config ``train.amp.dtype``).
            clip_grad (dict or None): ``dict(max_norm=..., norm_type=2.0)`` to clip the global
                gradient norm of the trainable parameters (config ``train.clip_grad``).
            device (str or torch.device): the device the model runs on.
        """
        super().__init__(model, data_loader, optimizer)
        if amp_dtype not in AMP_DTYPES:
            raise ValueError(
                f"train.amp.dtype must be one of {sorted(AMP_DTYPES)}, got {amp_dtype!r}"
            )
        if clip_grad is not None and "max_norm" not in clip_grad:
            raise ValueError(f"train.clip_grad must be None or dict(max_norm=...), got {clip_grad}")
        on_cuda = torch.device(device).type == "cuda"
        if amp_enabled and not on_cuda:
            logger.warning("train.amp.enabled is set but the device is CPU: training in float32.")
        self.amp_enabled = amp_enabled and on_cuda
        self.amp_dtype = AMP_DTYPES[amp_dtype]
        self.clip_grad = dict(clip_grad) if clip_grad is not None else None
        # bfloat16 has float32's exponent range, so only float16 needs loss scaling.
        self.grad_scaler = (
            torch.amp.GradScaler("cuda")
            if self.amp_enabled and self.amp_dtype == torch.float16
            else None
        )

    def run_step(self):
        assert self.model.training, "[MixedPrecisionTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        with torch.autocast("cuda", dtype=self.amp_dtype, enabled=self.amp_enabled):
            loss_dict = self.model(data)
            if isinstance(loss_dict, torch.Tensor):
                loss_dict = {"total_loss": loss_dict}
            losses = sum(loss_dict.values())

        self.optimizer.zero_grad()
        if self.grad_scaler is not None:
            self.grad_scaler.scale(losses).backward()
        else:
            losses.backward()
        self._write_metrics(loss_dict, data_time)

        if self.clip_grad is not None:
            if self.grad_scaler is not None:
                self.grad_scaler.unscale_(self.optimizer)
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in params if p.grad is not None], **self.clip_grad
            )
            self.storage.put_scalar("grad_norm", float(grad_norm))

        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()

    def state_dict(self):
        ret = super().state_dict()
        if self.grad_scaler is not None:
            ret["grad_scaler"] = self.grad_scaler.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if self.grad_scaler is not None and "grad_scaler" in state_dict:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
