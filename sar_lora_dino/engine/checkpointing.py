"""Checkpoints that are never half-written: save to a temporary file, then rename."""

import os

import torch

from sar_lora_dino.checkpoint.checkpointer import SARCheckpointer
from sar_lora_dino.utils.io import atomic_write

__all__ = ["TrainingCheckpointer"]


class TrainingCheckpointer(SARCheckpointer):
    """
    The project's checkpointer (it reads every accepted weight format) with atomic saves: a run
    killed while saving leaves the previous checkpoint and ``last_checkpoint`` intact, so
    ``--resume`` always finds a complete file.
    """

    def save(self, name, *, tag_last=True, model_only=False, **kwargs):
        """
        Args:
            name (str): file name without ".pth", in ``save_dir``.
            tag_last (bool): point ``last_checkpoint`` (what ``--resume`` loads) at this file.
                False for side files such as ``model_best``.
            model_only (bool): store only the model weights (plus ``kwargs``), not the
                optimizer/trainer state.
            kwargs: extra entries stored in the file (e.g. ``iteration``).
        """
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
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

    def tag_last_checkpoint(self, last_filename_basename):
        atomic_write(
            os.path.join(self.save_dir, "last_checkpoint"),
            lambda f: f.write(last_filename_basename),
            mode="w",
        )
