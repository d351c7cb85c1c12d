"""A trained detector for inference: config + weights (or a run folder), batched forward passes."""

import logging
import os

import numpy as np
import torch
from detectron2.config import instantiate
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from omegaconf import OmegaConf

from sar_lora_dino.checkpoint import SARCheckpointer, file_fingerprint
from sar_lora_dino.data.image_io import to_format
from sar_lora_dino.data.sardet import SARDET100K_CATEGORIES
from sar_lora_dino.engine.train_net import load_config

__all__ = ["Predictor", "find_run_files", "load_inference_config"]

logger = logging.getLogger(__name__)

_RUN_WEIGHTS = ("model_best.pth", "model_final.pth")


def find_run_files(run_dir):
    """
    Args:
        run_dir (str): a training output folder.

    Returns:
        tuple[str, str]: its ``config.yaml`` and its weights: ``model_best.pth``, else
        ``model_final.pth``, else the file named in ``last_checkpoint``.
    """
    config = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(config):
        raise FileNotFoundError(f"--run {run_dir}: no config.yaml; is it a training output folder?")
    candidates = [os.path.join(run_dir, name) for name in _RUN_WEIGHTS]
    last = os.path.join(run_dir, "last_checkpoint")
    if os.path.isfile(last):
        with open(last) as f:
            candidates.append(os.path.join(run_dir, f.read().strip()))
    for path in candidates:
        if os.path.isfile(path):
            return config, path
    raise FileNotFoundError(
        f"--run {run_dir}: no weights (looked for {', '.join(_RUN_WEIGHTS)} and last_checkpoint)"
    )


def load_inference_config(config_file, overrides=(), scaling=None, confidence=None, device=None):
    """
    Load a training config for inference with checked ``key=value`` overrides.

    Args:
        config_file (str): a ``.py`` LazyConfig or a run's ``config.yaml``.
        overrides (list[str]): as for the training tool.
        scaling (str or None): sets ``dataloader.scaling`` (and the test mapper's).
        confidence (float or None): sets ``model.test_score_thresh``.
        device (str or None): sets ``train.device``.

    Returns:
        DictConfig
    """
    cfg = load_config(config_file, overrides)
    if scaling is not None:
        cfg.dataloader.scaling = scaling
        cfg.dataloader.test.mapper.scaling = scaling
    if confidence is not None:
        cfg.model.test_score_thresh = float(confidence)
    if device is not None:
        cfg.train.device = device
    return cfg


class _RecordingCheckpointer(SARCheckpointer):
    """SARCheckpointer that keeps what did not match, so inference can refuse partial weights."""

    incompatible = None

    def _load_model(self, checkpoint):
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible


class Predictor:
    """
    A detector built from a config and loaded with trained weights; calls take images in the
    model's 0..255 range and return detections in their pixels. Each image goes through the
    config's test-time augmentations (``dataloader.test.mapper.augmentations``: the resize to
    the input size the model was trained at), exactly as in evaluation.
    """

    def __init__(self, cfg, weights):
        """
        Args:
            cfg (DictConfig): from :func:`load_inference_config`.
            weights (str): any checkpoint :class:`SARCheckpointer` reads.
        """
        self.cfg = cfg
        self.device = str(cfg.train.get("device", "cpu"))
        self.model = instantiate(cfg.model).to(self.device).eval()
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"--weights: no such file {weights!r}")
        checkpointer = _RecordingCheckpointer(self.model)
        checkpointer.load(weights, checkpointables=[])
        missing = list(getattr(checkpointer.incompatible, "missing_keys", None) or [])
        if missing:
            raise ValueError(
                f"{weights} does not hold a trained model for this config: {len(missing)} "
                f"tensor(s) missing, e.g. {sorted(missing)[:5]}. Pass the run's own config "
                "(--run DIR, or its config.yaml) with its weights."
            )
        self.weights = file_fingerprint(weights)
        test = cfg.dataloader.test
        self.augmentations = T.AugmentationList(list(instantiate(test.mapper.augmentations)))
        self.image_format = test.mapper.get("image_format", "RGB")
        self.scaling = str(OmegaConf.select(cfg, "dataloader.test.mapper.scaling", default="none"))
        self.metadata = self._metadata(test)
        scale = OmegaConf.select(cfg, "dataloader.image_scale", default=None)
        self.input_size = list(scale) if scale is not None else None

    @staticmethod
    def _metadata(test):
        names = test.dataset.get("names", None)
        name = names if isinstance(names, str) else (names[0] if names else None)
        if name is not None and "thing_classes" in MetadataCatalog.get(name).as_dict():
            return MetadataCatalog.get(name)
        meta = MetadataCatalog.get("__sar_lora_dino_inference")
        if "thing_classes" not in meta.as_dict():
            meta.set(
                thing_classes=[c["name"] for c in SARDET100K_CATEGORIES],
                thing_colors=[c["color"] for c in SARDET100K_CATEGORIES],
            )
        return meta

    def _input(self, image):
        image = to_format(image, self.image_format)
        aug_input = T.AugInput(image)
        self.augmentations(aug_input)
        tensor = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
        return {"image": tensor, "height": image.shape[0], "width": image.shape[1]}

    def __call__(self, images):
        """
        Args:
            images (list[np.ndarray]): HxWx1 or HxWx3 RGB images in 0..255 (uint8 or float32),
                run in one forward pass.

        Returns:
            list[tuple[Tensor, Tensor, Tensor]]: per image, XYXY boxes in its pixels, scores
            and class indices (on the CPU).
        """
        if not images:
            return []
        with torch.inference_mode():
            outputs = self.model([self._input(im) for im in images])
        results = []
        for out in outputs:
            inst = out["instances"].to("cpu")
            results.append((inst.pred_boxes.tensor, inst.scores, inst.pred_classes))
        return results
