"""Fixed-size resize taking the original's (w, h) scale, with OpenCV or PIL bilinear."""

import cv2
import numpy as np
from detectron2.data import transforms as T
from fvcore.transforms.transform import Transform
from PIL import Image

__all__ = ["OpenCVResizeTransform", "ResizeWH"]

_BACKENDS = ("opencv", "pil")


class OpenCVResizeTransform(Transform):
    """
    Resize to a fixed size with ``cv2.resize`` as the original's ``mmcv.imresize`` does:
    ``INTER_LINEAR`` does not antialias when shrinking (detectron2's PIL bilinear does).
    Coordinates scale by ``new_w / w`` and ``new_h / h``, as in both.
    """

    def __init__(self, h, w, new_h, new_w):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img, interp=cv2.INTER_LINEAR):
        """An HxW or HxWxC image of any dtype OpenCV takes; dtype and ndim are kept."""
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(
                f"OpenCVResizeTransform expects an image of (h, w) = {(self.h, self.w)}, "
                f"got shape {img.shape}"
            )
        out = cv2.resize(np.ascontiguousarray(img), (self.new_w, self.new_h), interpolation=interp)
        if img.ndim == 3 and out.ndim == 2:  # OpenCV drops a trailing channel axis of 1
            out = out[:, :, None]
        return out

    def apply_coords(self, coords):
        coords[:, 0] = coords[:, 0] * (self.new_w * 1.0 / self.w)
        coords[:, 1] = coords[:, 1] * (self.new_h * 1.0 / self.h)
        return coords

    def apply_segmentation(self, segmentation):
        return self.apply_image(segmentation, interp=cv2.INTER_NEAREST)

    def inverse(self):
        return OpenCVResizeTransform(self.new_h, self.new_w, self.h, self.w)


class ResizeWH(T.Augmentation):
    """
    Resize to a fixed size ignoring the aspect ratio, like the original's
    ``Resize(scale=(w, h), keep_ratio=False)``: note ``scale`` is (width, height), whereas
    detectron2's ``T.Resize`` takes (height, width).
    """

    def __init__(self, scale, backend="opencv"):
        """
        Args:
            scale (int or tuple[int, int]): output (width, height); an int for a square.
            backend (str): "opencv" (the original: ``cv2.INTER_LINEAR``) or "pil"
                (detectron2's ``T.Resize``: PIL bilinear, antialiased when shrinking).
        """
        super().__init__()
        if isinstance(scale, int):
            scale = (scale, scale)
        scale = tuple(int(s) for s in scale)
        if len(scale) != 2:
            raise ValueError(f"ResizeWH scale must be (width, height), got {scale!r}")
        if backend not in _BACKENDS:
            raise ValueError(f"ResizeWH backend must be one of {_BACKENDS}, got {backend!r}")
        self._init(locals())

    def get_transform(self, image):
        h, w = image.shape[:2]
        new_w, new_h = self.scale
        if self.backend == "opencv":
            return OpenCVResizeTransform(h, w, new_h, new_w)
        return T.ResizeTransform(h, w, new_h, new_w, Image.BILINEAR)


SARResize = ResizeWH  # deprecated alias (saved configs)
