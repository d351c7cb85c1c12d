"""Training checkpoints: atomic, pruned across resumes, strict on load, or trainable-only."""

import os
import re
import shutil

import torch

from sar_lora_dino.checkpoint.checkpointer import (
    _ADAPTER_SOURCE,
    _DINOV3_SOURCE,
    MultiFormatCheckpointer,
    state_dict_mismatch,
)
from sar_lora_dino.checkpoint.fingerprint import file_fingerprint, same_weights
from sar_lora_dino.utils.io import TEMP_PREFIX, atomic_write

__all__ = [
    "CheckpointMismatchError",
    "TrainingCheckpointer",
    "clean_stale_temps",
    "PERIODIC_NAME",
]

# model_0000123.pth: what the periodic and signal checkpoints are called (and what is pruned)
PERIODIC_NAME = re.compile(r"^model_(\d{7})\.pth$")


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is loaded into (strict loading)."""


def clean_stale_temps(folder):
    """Remove and return what a killed run left of atomic writes (``TEMP_PREFIX``) in ``folder``."""
    removed = []
    for parent, dirs, files in os.walk(folder):  # nothing when the folder does not exist
        for name in list(dirs) + files:
            if name.startswith(TEMP_PREFIX):
                path = os.path.join(parent, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                    dirs.remove(name)
                else:
                    os.remove(path)
                removed.append(path)
    return removed


class TrainingCheckpointer(MultiFormatCheckpointer):
    """
    The project's checkpointer (it reads every accepted weight format) for training and
    evaluation:

    * saves are atomic: a run killed while saving leaves the previous checkpoint and
      ``last_checkpoint`` intact, so ``--resume`` always finds a complete file;
    * every save carries :attr:`extra_state` (e.g. the fingerprint of the initial weights);
    * with ``trainable_only`` a file holds only the trainable tensors (and buffers) plus the
      fingerprint of the base weights; loading it re-reads the base first and fails if the base
      is absent or another file;
    * with ``strict`` (resume, evaluation) any tensor of the model that the file does not
      provide, any extra tensor and any shape mismatch is an error listing them.

    Args:
        base_candidates (list[str]): files to re-read the frozen base of a trainable-only
            checkpoint from (e.g. ``train.init_checkpoint``); the first with the recorded
            fingerprint is used.
        max_to_keep (int or None): periodic checkpoints :meth:`prune` keeps (None or 0: all).
        kwargs: as in :class:`MultiFormatCheckpointer` (``base_checkpoint=``, checkpointables
            such as ``trainer=``).
    """

    def __init__(
        self,
        model,
        save_dir="",
        *,
        trainable_only=False,
        base_candidates=(),
        strict=False,
        max_to_keep=None,
        **kwargs,
    ):
        super().__init__(model, save_dir, **kwargs)
        self.trainable_only = bool(trainable_only)
        self.base_candidates = [c for c in base_candidates if c]
        self.strict = bool(strict)
        self.max_to_keep = max_to_keep
        self.extra_state = {}
        self.last_saved = None  # {"path": ..., "iteration": ...} of the last tagged save

    def _model_state(self):
        module = self.model  # fvcore's Checkpointer already unwrapped DDP
        state = module.state_dict()
        if not self.trainable_only:
            return state, None
        keep = {n for n, p in module.named_parameters() if p.requires_grad}
        keep |= {n for n, _ in module.named_buffers()}
        # do_train checked that the initial weights are a file (a fingerprint) before training
        base = self.extra_state["init_weights"]
        info = {"base_weights": base, "frozen_keys": sorted(set(state) - keep)}
        return {k: v for k, v in state.items() if k in keep}, info

    def save(self, name, *, tag_last=True, model_only=False, **kwargs):
        """
        Save ``save_dir/name.pth`` atomically, pointing ``last_checkpoint`` (what ``--resume``
        loads) at it if ``tag_last``. ``model_only`` leaves out the optimizer/trainer state;
        ``kwargs`` are extra entries of the file (e.g. ``iteration``).
        """
        if not self.save_dir or not self.save_to_disk:
            return
        model_state, trainable_info = self._model_state()
        data = {"model": model_state, **self.extra_state}
        if trainable_info is not None:
            data["trainable_only"] = trainable_info
        if not model_only:
            for key, obj in self.checkpointables.items():
                data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_write(save_file, lambda f: torch.save(data, f))
        if tag_last:
            self.tag_last_checkpoint(basename)
            self.last_saved = {"path": save_file, "iteration": kwargs.get("iteration")}

    def prune(self):
        """
        Keep the newest ``max_to_keep`` periodic checkpoints (``model_NNNNNNN.pth``, periodic and
        SIGTERM ones alike, from this and earlier runs in the folder; None or 0: all) and the
        one ``last_checkpoint`` names; return the names of the removed files.
        """
        max_to_keep = self.max_to_keep
        if not max_to_keep or max_to_keep <= 0 or not os.path.isdir(self.save_dir):
            return []
        last = os.path.basename(self.get_checkpoint_file())
        found = sorted(
            (int(m[1]), n) for n in os.listdir(self.save_dir) if (m := PERIODIC_NAME.match(n))
        )
        removed = [name for _, name in found[: max(0, len(found) - max_to_keep)] if name != last]
        for name in removed:
            os.remove(os.path.join(self.save_dir, name))
        if removed:
            self.logger.info(f"Removed old checkpoints (max_to_keep={max_to_keep}): {removed}")
        return removed

    def tag_last_checkpoint(self, last_filename_basename):
        atomic_write(
            os.path.join(self.save_dir, "last_checkpoint"),
            lambda f: f.write(last_filename_basename),
            mode="w",
        )

    def _load_base(self, info, source):
        wanted = info["base_weights"]
        tried = []
        for candidate in list(dict.fromkeys(self.base_candidates + [wanted.get("path", "")])):
            if not candidate:
                continue
            if not os.path.isfile(candidate):
                tried.append(f"{candidate}: no such file")
                continue
            if not same_weights(file_fingerprint(candidate), wanted):
                tried.append(f"{candidate}: different content (sha256 differs)")
                continue
            self.logger.info(f"{source} holds trainable tensors only; base weights: {candidate}")
            MultiFormatCheckpointer(self.model).load(candidate, checkpointables=[])
            return
        raise FileNotFoundError(
            f"{source} holds only the trainable tensors; its frozen base weights are "
            f"{wanted.get('path')} ({wanted.get('size')} bytes, sha256 {wanted.get('sha256')}). "
            "Give that file as train.init_checkpoint (set the weights variable, e.g. "
            "DINOV3_WEIGHTS). Tried: " + ("; ".join(tried) or "nothing (no file named)")
        )

    def load(self, path, checkpointables=None):
        self._loading = path
        return super().load(path, checkpointables=checkpointables)

    def _load_model(self, checkpoint):
        source = getattr(self, "_loading", "the checkpoint")
        info = checkpoint.pop("trainable_only", None)
        if info is not None:
            self._load_base(info, source)
        if self.strict and _ADAPTER_SOURCE not in checkpoint:  # adapters check their own keys
            if _DINOV3_SOURCE in checkpoint:
                raise CheckpointMismatchError(
                    f"{source} is a backbone-only DINOv3 file; evaluation and --resume need a "
                    "detector checkpoint saved by training (model_final.pth, model_best.pth)."
                )
            self._check_fits(checkpoint.get("model", {}), source, info)
        incompatible = super()._load_model(checkpoint)
        if info is not None and incompatible is not None:
            frozen = set(info["frozen_keys"])
            incompatible = incompatible._replace(
                missing_keys=[k for k in incompatible.missing_keys if k not in frozen]
            )
        return incompatible

    def _check_fits(self, state_dict, source, info):
        keys = {
            k[len("module.") :] if k.startswith("module.") else k: v for k, v in state_dict.items()
        }
        module = self.model
        model_shapes = {k: v.shape for k, v in module.state_dict().items()}
        # state a module fills itself when a file lacks it (e.g. MMDetRetinaNet's EMA normaliser)
        optional = {
            f"{name}.{key}" if name else key
            for name, sub in module.named_modules()
            for key in getattr(sub, "optional_state_keys", ())
        }
        expected = set(model_shapes) - set(info["frozen_keys"] if info else ()) - optional
        problems = state_dict_mismatch(keys, model_shapes, expected)
        if problems:
            raise CheckpointMismatchError(
                f"{source} does not fit this config's model: {'; '.join(problems)}. Was it "
                "trained with another config (e.g. another LoRA rank or targets)?"
            )
