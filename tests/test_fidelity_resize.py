"""Item 7 of the fidelity list: OpenCV INTER_LINEAR resize with (w, h) scale."""

import cv2
import numpy as np
import pytest
from detectron2.data import transforms as T

from sar_lora_dino.data.transforms import ResizeWH


def _image(h, w, c=3):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)


def test_resize_1024_matches_opencv_bit_for_bit():
    img = _image(1024, 1024)
    out = ResizeWH((800, 800)).get_transform(img).apply_image(img)
    expected = cv2.resize(img, (800, 800), interpolation=cv2.INTER_LINEAR)
    assert out.dtype == np.uint8 and out.shape == (800, 800, 3)
    assert np.array_equal(out, expected)
    # PIL bilinear (detectron2's T.Resize) antialiases: a different image
    pil = ResizeWH((800, 800), backend="pil").get_transform(img).apply_image(img)
    assert np.abs(pil.astype(int) - out.astype(int)).mean() > 1


def test_scale_is_width_height_and_boxes_scale():
    img = _image(100, 150, c=1)
    inputs = T.AugInput(img, boxes=np.array([[15.0, 10.0, 75.0, 50.0]]))
    transform = T.AugmentationList([ResizeWH((300, 200))])(inputs)
    assert inputs.image.shape == (200, 300, 1)  # (h, w, 1) kept for single-channel images
    np.testing.assert_allclose(inputs.boxes, [[30.0, 20.0, 150.0, 100.0]])
    np.testing.assert_allclose(transform.inverse().apply_box(inputs.boxes), [[15, 10, 75, 50]])
    # boxes move exactly as with detectron2's T.Resize, which takes (h, w)
    d2 = T.Resize((200, 300)).get_transform(img)
    np.testing.assert_allclose(d2.apply_box(np.array([[15.0, 10.0, 75.0, 50.0]])), inputs.boxes)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="backend"):
        ResizeWH(800, backend="torch")
    with pytest.raises(ValueError, match="expects an image"):
        ResizeWH(8).get_transform(_image(4, 4)).apply_image(_image(5, 4))
