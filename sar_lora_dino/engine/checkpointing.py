"""Checkpoints that are never half-written: save to a temporary file, then rename."""

import os
import tempfile

import torch

from sar_lora_dino.checkpoint.checkpointer import SARCheckpointer

__all__ = ["TrainingCheckpointer", "atomic_write"]


def atomic_write(path, write_fn, mode="wb"):
    """
    Write a file so that readers see either the old content or the complete new one.

    Args:
        path (str): destination file.
        write_fn (callable): called with an open file object to write the content.
        mode (str): "wb" or "w".
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
