"""DatasetMapper that reads SAR values through the project's one reader and names bad files."""

import copy
import os

import numpy as np
import torch
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .image_io import read_image
from .scaling import parse_scaling

__all__ = ["ScaledImageDatasetMapper"]


class ScaledImageDatasetMapper(DatasetMapper):
    """
    detectron2's :class:`DatasetMapper` for detection (no semantic segmentation), with two
    changes: images are read by :func:`sar_lora_dino.data.image_io.read_image` (8-bit files as
    detectron2 reads them, 16-bit/float ones mapped to 0..255 by ``scaling``, i.e.
    ``dataloader.scaling``); and an image that cannot be decoded, or whose size disagrees with
    the JSON, raises an error naming the file and its split instead of a bare PIL trace.
    """

    def __init__(self, is_train, *, scaling="none", **kwargs):
        super().__init__(is_train, **kwargs)
        self.scaling = str(parse_scaling(scaling))

    def _map(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)
        image = read_image(dataset_dict["file_name"], self.image_format, self.scaling)
        utils.check_image_size(dataset_dict, image)
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        image_shape = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if self.proposal_topk is not None:
            utils.transform_proposals(
                dataset_dict, image_shape, transforms, proposal_topk=self.proposal_topk
            )
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict

    def __call__(self, dataset_dict):
        try:
            return self._map(dataset_dict)
        except (OSError, ValueError, SyntaxError) as e:  # PIL raises OSError subclasses
            path = dataset_dict.get("file_name", "<no file_name>")
            split = os.path.basename(os.path.dirname(path))
            raise RuntimeError(
                f"Cannot use image '{path}' (split '{split}', image_id "
                f"{dataset_dict.get('image_id')}): {type(e).__name__}: {e}. Check the file with "
                "datasets/prepare_sardet100k.py."
            ) from e


SARDatasetMapper = ScaledImageDatasetMapper  # deprecated alias (saved configs)
