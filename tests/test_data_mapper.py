"""A corrupt image fails in the mapper with its path and split, not a bare PIL trace."""

import os

import numpy as np
import pytest
from PIL import Image

from sar_lora_dino.data import ScaledImageDatasetMapper
from sar_lora_dino.data.transforms import ResizeWH


def _mapper():
    return ScaledImageDatasetMapper(
        is_train=True, augmentations=[ResizeWH(scale=(64, 48))], image_format="RGB"
    )


def test_truncated_image_names_file_and_split(tmp_path):
    folder = tmp_path / "JPEGImages" / "val"
    folder.mkdir(parents=True)
    path = folder / "0000026.jpg"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(path)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 3)
    record = {"file_name": str(path), "height": 32, "width": 32, "image_id": 26, "annotations": []}
    with pytest.raises(RuntimeError, match=r"0000026\.jpg.*split 'val'"):
        _mapper()(record)


def test_size_mismatch_with_annotation_names_file(tmp_path):
    folder = tmp_path / "JPEGImages" / "test"
    folder.mkdir(parents=True)
    path = folder / "0000002.png"
    Image.fromarray(np.zeros((30, 20), np.uint8)).save(path)
    record = {"file_name": str(path), "height": 99, "width": 99, "image_id": 2, "annotations": []}
    with pytest.raises(RuntimeError, match=r"0000002\.png.*split 'test'"):
        _mapper()(record)
