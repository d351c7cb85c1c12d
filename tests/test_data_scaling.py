"""16-bit/float SAR input: each scaling's values, the one reader, the mapper and the checker."""

import os

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetMapper
from detectron2.data.detection_utils import read_image as d2_read_image
from PIL import Image

from sar_lora_dino.data import ScaledImageDatasetMapper, make_synthetic_sardet
from sar_lora_dino.data.check import check_sardet_root, format_report
from sar_lora_dino.data.image_io import ImageReadError, read_image, read_raw
from sar_lora_dino.data.scaling import apply_scaling, parse_scaling, scaling_bounds
from sar_lora_dino.data.transforms import ResizeWH


def _tifffile():
    return pytest.importorskip("tifffile")


def test_parse_scaling_spellings():
    assert str(parse_scaling(None)) == "none"
    assert str(parse_scaling(" MinMax ")) == "minmax"
    assert str(parse_scaling("percentile(1, 99.5)")) == "percentile(1,99.5)"
    assert parse_scaling("db(-25,5)") == ("db", -25.0, 5.0, False)
    assert parse_scaling("db(-30,0,power)").power
    for bad in ("log", "percentile(99,1)", "db(0)", "db(-1,1,phase)", "minmax(1)"):
        with pytest.raises(ValueError, match="dataloader.scaling"):
            parse_scaling(bad)


def test_minmax_and_percentile_values():
    x = np.array([[100, 200], [300, 1100]], np.uint16)
    np.testing.assert_allclose(apply_scaling(x, "minmax"), [[0, 25.5], [51, 255]], atol=1e-4)
    ramp = np.arange(101, dtype=np.float32).reshape(1, 101)  # percentiles are the values
    assert scaling_bounds(ramp, "percentile(10,90)") == (10.0, 90.0)
    out = apply_scaling(ramp, "percentile(10,90)")
    assert out.dtype == np.float32 and out[0, 0] == 0 and out[0, 100] == 255  # clipped
    np.testing.assert_allclose(out[0, 50], 127.5, atol=1e-4)
    np.testing.assert_allclose(apply_scaling(np.full((2, 2), 7.0), "minmax"), 0)  # constant


def test_db_amplitude_and_power():
    x = np.array([[0.0, 0.01, 0.1, 1.0, 10.0]], np.float32)
    # amplitude: 20*log10 -> [-inf, -40, -20, 0, 20] dB; -40..0 dB -> 0..255
    np.testing.assert_allclose(apply_scaling(x, "db(-40,0)"), [[0, 0, 127.5, 255, 255]], atol=1e-3)
    # power: 10*log10 -> [-inf, -20, -10, 0, 10] dB
    np.testing.assert_allclose(
        apply_scaling(x, "db(-40,0,power)"), [[0, 127.5, 191.25, 255, 255]], atol=1e-3
    )
    with pytest.raises(ValueError, match="negative"):
        apply_scaling(np.array([[-3.0, 1.0]]), "db(-40,0)")


def test_none_keeps_8bit_and_in_range_floats_and_refuses_the_rest():
    u8 = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert apply_scaling(u8, "db(-40,0)") is u8  # 8-bit is never scaled
    f = np.array([[0.5, 254.5]], np.float32)
    np.testing.assert_array_equal(apply_scaling(f, "none"), f)
    with pytest.raises(ValueError, match=r"uint16 values in \[0, 4000\].*scaling is 'none'"):
        apply_scaling(np.array([[0, 4000]], np.uint16), "none")
    nan = np.array([[np.nan, 1.0, 3.0]], np.float32)
    np.testing.assert_allclose(apply_scaling(nan, "minmax"), [[0, 0, 255]])


def test_complex_input_says_convert_to_amplitude():
    with pytest.raises(ValueError, match="SLC.*amplitude"):
        apply_scaling(np.ones((2, 2), np.complex64), "minmax")


def _grey(tmp_path, name="grey.png"):
    rng = np.random.default_rng(0)
    path = str(tmp_path / name)
    Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8), mode="L").save(path)
    return path


def test_8bit_files_read_exactly_as_detectron2(tmp_path):
    grey = _grey(tmp_path)
    rgb = str(tmp_path / "rgb.jpg")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 20, 3), np.uint8)).save(rgb)
    for path in (grey, rgb):
        for scaling in ("none", "minmax", "db(-30,0)"):
            ours = read_image(path, "RGB", scaling)
            assert ours.dtype == np.uint8
            np.testing.assert_array_equal(ours, d2_read_image(path, format="RGB"))


def test_16bit_png_and_float_tiff_keep_their_values(tmp_path):
    values = (np.arange(40 * 50).reshape(40, 50) * 20).astype(np.uint16)  # up to 39980
    png = str(tmp_path / "u16.png")
    Image.fromarray(values).save(png)
    raw = read_raw(png)
    assert raw.dtype == np.uint16 and raw.shape == (40, 50, 1) and raw.max() == 39980
    image = read_image(png, "RGB", "minmax")
    assert image.shape == (40, 50, 3) and image.dtype == np.float32
    np.testing.assert_allclose(image[..., 0], values / 39980 * 255, atol=1e-3)
    tif = str(tmp_path / "f32.tif")
    Image.fromarray(values.astype(np.float32) / 10).save(tif)
    raw = read_raw(tif)
    assert raw.dtype == np.float32 and len(np.unique(raw)) == 40 * 50
    with pytest.raises(ImageReadError, match="f32.tif.*scaling is 'none'"):
        read_image(tif, "RGB", "none")


def test_multichannel_16bit_tiff_keeps_rgb_order_and_slc_is_refused(tmp_path):
    tifffile = _tifffile()
    rgb = np.zeros((8, 9, 3), np.uint16)
    rgb[..., 0], rgb[..., 2] = 1000, 3000
    path = str(tmp_path / "rgb16.tif")
    tifffile.imwrite(path, rgb, photometric="rgb")
    raw = read_raw(path)
    assert raw.shape == (8, 9, 3) and raw[0, 0].tolist() == [1000, 0, 3000]
    slc = str(tmp_path / "slc.tif")
    tifffile.imwrite(slc, np.ones((8, 9), np.complex64))
    png = str(tmp_path / "rgb16.png")  # PIL would read this as 8-bit RGB
    assert cv2.imwrite(png, rgb[..., ::-1].copy())
    assert read_raw(png)[0, 0].tolist() == [1000, 0, 3000]
    with pytest.raises(ImageReadError, match="SLC.*amplitude"):
        read_image(slc, "RGB", "minmax")


def _record(path, h, w):
    return {"file_name": path, "height": h, "width": w, "image_id": 1, "annotations": []}


def test_mapper_8bit_path_is_the_stock_one_and_16bit_is_scaled(tmp_path):
    grey = _grey(tmp_path)
    augs = [ResizeWH(scale=(64, 48))]
    ours = ScaledImageDatasetMapper(is_train=False, augmentations=augs, image_format="RGB")
    stock = DatasetMapper(is_train=False, augmentations=augs, image_format="RGB")
    a, b = ours(_record(grey, 40, 50)), stock(_record(grey, 40, 50))
    assert a["image"].dtype == torch.uint8 and torch.equal(a["image"], b["image"])

    u16 = str(tmp_path / "JPEGImages" / "train" / "0000007.png")
    os.makedirs(os.path.dirname(u16))
    Image.fromarray(np.full((40, 50), 30000, np.uint16)).save(u16)
    with pytest.raises(RuntimeError, match=r"0000007\.png.*split 'train'.*scaling is 'none'"):
        ours(_record(u16, 40, 50))
    scaled = ScaledImageDatasetMapper(
        is_train=False, augmentations=[], image_format="RGB", scaling="db(0,100)"
    )(_record(u16, 40, 50))["image"]
    # 20*log10(30000) = 89.54 dB of 0..100 dB
    np.testing.assert_allclose(scaled.numpy(), 20 * np.log10(30000) * 2.55, atol=1e-3)


def test_checker_reports_16bit_images_and_what_the_scaling_does(tmp_path):
    root = str(tmp_path / "root")
    make_synthetic_sardet(root, num_train=3, num_val=0, num_test=0, sizes=(64,), formats=("png",))
    name = sorted(os.listdir(os.path.join(root, "JPEGImages", "train")))[0]
    path = os.path.join(root, "JPEGImages", "train", name)
    values = np.asarray(Image.open(path).convert("L")).astype(np.uint16) * 100
    Image.fromarray(values).save(path)  # now a 16-bit PNG, values up to 25500
    report = check_sardet_root(root, splits=("train",), expected=None, progress=False)
    text = format_report(report)
    assert "1 image(s) beyond 8 bits" in text and "uint16" in text
    assert any("not usable with this scaling" in p and name in p for p in report["problems"])
    report = check_sardet_root(
        root, splits=("train",), expected=None, progress=False, scaling="minmax"
    )
    assert report["problems"] == []
    assert "'minmax' maps [800, 25500] to 0..255" in format_report(report)
