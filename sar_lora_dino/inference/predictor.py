"""A trained detector for inference: config + weights (or a run folder), batched forward passes."""

import logging

import numpy as np
import torch
from detectron2.config import instantiate
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from omegaconf import OmegaConf

from sar_lora_dino.checkpoint import file_fingerprint
from sar_lora_dino.data.image_io import to_format
from sar_lora_dino.data.sardet import SARDET100K_CATEGORIES
from sar_lora_dino.engine.train_net import load_config
from sar_lora_dino.export.model import build_trained_model, find_run_files

__all__ = ["Predictor", "find_run_files", "load_inference_config"]

logger = logging.getLogger(__name__)


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
            weights (str): any checkpoint :func:`build_trained_model` reads.
        """
        self.cfg = cfg
        self.device = str(cfg.train.get("device", "cpu"))
        self.model = build_trained_model(cfg, weights, self.device)
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
