"""A trained detector for inference: a config and its weights, batched forward passes."""

import numpy as np
import torch
from detectron2.config import instantiate
from detectron2.data import Metadata, MetadataCatalog
from detectron2.data import transforms as T
from omegaconf import OmegaConf

from sar_lora_dino.checkpoint import file_fingerprint
from sar_lora_dino.data.image_io import to_format
from sar_lora_dino.data.sardet import SARDET100K_CATEGORIES
from sar_lora_dino.export.model import build_trained_model

__all__ = ["Predictor"]


class Predictor:
    """
    A detector built from a config and loaded with trained weights; calls take images in the
    model's 0..255 range and return detections in their pixels. Each image goes through the
    config's test-time augmentations (``dataloader.test.mapper.augmentations``: the resize to
    the input size the model was trained at), exactly as in evaluation.

    Args:
        cfg (DictConfig): the run's config.
        weights (str): any checkpoint :func:`build_trained_model` reads.
    """

    def __init__(self, cfg, weights):
        self.model = build_trained_model(cfg, weights, str(cfg.train.get("device", "cpu")))
        self.weights = file_fingerprint(weights)
        test = cfg.dataloader.test
        self.augmentations = T.AugmentationList(list(instantiate(test.mapper.augmentations)))
        self.image_format = test.mapper.get("image_format", "RGB")
        self.scaling = str(OmegaConf.select(cfg, "dataloader.test.mapper.scaling", default="none"))
        names = test.dataset.get("names", None)
        name = names if isinstance(names, str) else (names[0] if names else None)
        self.metadata = MetadataCatalog.get(name) if name else Metadata()
        if "thing_classes" not in self.metadata.as_dict():  # a dataset not registered here
            self.metadata = Metadata(
                thing_classes=[c["name"] for c in SARDET100K_CATEGORIES],
                thing_colors=[c["color"] for c in SARDET100K_CATEGORIES],
            )
        scale = OmegaConf.select(cfg, "dataloader.image_scale", default=None)
        self.input_size = list(scale) if scale is not None else None

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
        instances = [out["instances"].to("cpu") for out in outputs]
        return [(i.pred_boxes.tensor, i.scores, i.pred_classes) for i in instances]
