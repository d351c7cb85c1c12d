"""The one image reader of training, evaluation and inference; it keeps 16-bit/float values."""

import importlib.util
import os

import cv2
import numpy as np
from detectron2.data import detection_utils
from PIL import Image

from .scaling import apply_scaling

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "has_tifffile",
    "read_image",
    "read_raw",
    "to_format",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# PIL modes whose pixels are 8 bits per channel: detectron2's read_image handles them exactly.
_8BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "La", "RGBa"}


class ImageReadError(OSError):
    """An image file that cannot be read or used, with the file named in the message."""


def has_tifffile():
    """Whether the optional ``tifffile`` package is installed."""
    return importlib.util.find_spec("tifffile") is not None


def _stored_8bit(im, path):
    """Whether an image PIL opened in an 8-bit mode really stores 8 bits per sample (PIL reads
    16-bit RGB PNGs and TIFFs as 8-bit "RGB", dropping the low byte)."""
    if im.mode not in _8BIT_MODES:
        return False
    if im.format == "PNG":
        with open(path, "rb") as f:
            header = f.read(26)
        return len(header) < 26 or header[24] <= 8  # IHDR bit depth
    if im.format == "TIFF":
        tags = getattr(im, "tag_v2", {})
        bits, formats = tags.get(258, 8), tags.get(339, 1)
        bits = bits if isinstance(bits, tuple) else (bits,)
        formats = formats if isinstance(formats, tuple) else (formats,)
        return all(b <= 8 for b in bits) and all(f == 1 for f in formats)
    return True


def _channels_last(array, path):
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim == 3 and array.shape[0] in (1, 2, 3, 4) and array.shape[2] > 4:
        array = np.moveaxis(array, 0, -1)  # planar (bands first), as tifffile/rasterio return
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(
            f"{path}: pixel array of shape {array.shape}; expected HxW, HxWx1, HxWx3 or HxWx4"
        )
    if array.shape[2] == 2:
        raise ImageReadError(
            f"{path}: 2 channels; if they are the I/Q parts of complex (SLC) data, convert to "
            "amplitude first (sqrt(I^2 + Q^2)); otherwise save a 1- or 3-channel image"
        )
    return array[:, :, :3] if array.shape[2] == 4 else array


def read_raw(path):
    """
    An image as an HxWx1 or HxWx3 (RGB) array of its stored values and dtype: PIL first, TIFFs
    PIL cannot read through tifffile when installed, anything else through OpenCV.
    """
    if not os.path.isfile(path):
        raise ImageReadError(f"{path}: no such file")
    errors = []
    try:
        with Image.open(path) as im:
            if _stored_8bit(im, path):
                return _channels_last(detection_utils.read_image(path, format="RGB"), path)
            if im.mode not in _8BIT_MODES:
                return _channels_last(np.asarray(im), path)
        errors.append(f"PIL: reads {im.format} with more than 8 bits per sample as 8-bit")
    except (OSError, ValueError, SyntaxError) as e:
        errors.append(f"PIL: {type(e).__name__}: {e}")
    if path.lower().endswith((".tif", ".tiff")) and has_tifffile():
        import tifffile

        try:
            return _channels_last(tifffile.imread(path), path)
        except ImageReadError:
            raise
        except Exception as e:  # tifffile raises many types on a damaged file
            errors.append(f"tifffile: {type(e).__name__}: {e}")
    array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if array is None:
        errors.append("OpenCV: cannot decode")
        hint = "" if has_tifffile() else " (for TIFFs PIL cannot read: pip install tifffile)"
        raise ImageReadError(f"{path}: cannot read the image ({'; '.join(errors)}){hint}")
    array = _channels_last(array, path)
    if array.shape[2] == 3:
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array)


def to_format(image, format):
    """An HxWx1 or HxWx3 RGB image in 0..255 as HxWx3 "RGB"/"BGR" or HxWx1 "L", same dtype."""
    if format == "L":
        if image.shape[2] == 1:
            return image
        grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return grey[:, :, None].astype(image.dtype)
    if format not in ("RGB", "BGR"):
        raise ValueError(f"image_format {format!r}: images beyond 8 bits support RGB, BGR or L")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image[:, :, ::-1] if format == "BGR" else image


def read_image(path, format="RGB", scaling="none"):
    """
    Read an image for the model in the mapper's ``format``. An 8-bit file (what SARDet-100K
    ships) takes detectron2's ``read_image``: uint8, exactly as a stock mapper reads it. Other
    files (16-bit, 32-bit, float) keep their values, mapped per image to float32 0..255 by
    ``scaling`` (``dataloader.scaling``, :mod:`sar_lora_dino.data.scaling`).
    """
    try:
        with Image.open(path) as im:
            eight_bit = _stored_8bit(im, path)
    except (OSError, ValueError, SyntaxError):  # not for PIL: read_raw tries the other readers
        eight_bit = False
    if eight_bit:
        return detection_utils.read_image(path, format=format)
    raw = read_raw(path)
    try:
        return to_format(apply_scaling(raw, scaling, source=path), format)
    except ValueError as e:
        raise ImageReadError(str(e)) from e
