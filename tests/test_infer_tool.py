"""tools/infer.py end to end with a tiny model: input kinds, bad files, run folders, tiling."""

import json
import os

import numpy as np
import pytest
import torch
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig, instantiate
from detectron2.layers import ShapeSpec
from PIL import Image

from sar_lora_dino.engine import ConfigOverrideError
from sar_lora_dino.inference.cli import main
from sar_lora_dino.utils.io import TEMP_PREFIX

_TINY = os.path.join(os.path.dirname(__file__), "configs", "tiny_lora_r16_fc1fc2.py")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A training output folder: config.yaml (input 96x96) and model_best.pth of a tiny model."""
    out = tmp_path_factory.mktemp("run")
    cfg = LazyConfig.load(_TINY)
    cfg.model.head.input_shape = [L(ShapeSpec)(channels=32)] * 5  # so that YAML can hold it
    cfg.dataloader.image_scale = [96, 96]
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    torch.save({"model": model.state_dict()}, str(out / "model_best.pth"))
    LazyConfig.save(cfg, str(out / "config.yaml"))
    return str(out)


def _grey(seed=0, shape=(96, 96)):
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    pixels[0, 0], pixels[0, 1] = 0, 255  # so that minmax maps a 16-bit copy back exactly
    return pixels


def _results(out):
    with open(os.path.join(out, "inputs.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(out, "coco_instances_results.json")) as f:
        results = json.load(f)
    by_name = {}
    for image in manifest["images"]:
        dets = [r for r in results if r["image_id"] == image["id"]]
        by_name[os.path.basename(image["file_name"])] = np.array(
            sorted(r["bbox"] + [r["score"], r["category_id"]] for r in dets)
        )
    return manifest, by_name


def test_grey_rgb_16bit_float_inputs_and_a_corrupt_file(run_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    grey = _grey()
    Image.fromarray(grey).save(folder / "grey.png")
    Image.fromarray(np.stack([grey, grey[::-1], grey.T], -1)).save(folder / "rgb.jpg")
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "u16.png")
    Image.fromarray(grey.astype(np.float32) / 255).save(folder / "f32.tif")
    Image.fromarray(grey).save(folder / "broken.jpg")
    with open(folder / "broken.jpg", "r+b") as f:
        f.truncate(300)
    (folder / "notes.txt").write_text("not an image")
    out = str(tmp_path / "out")
    rc = main(
        ["--run", run_dir, "--input", str(folder), "--output", out, "--scaling", "minmax",
         "--confidence-threshold", "0", "--batch", "3", "--device", "cpu"]
    )  # fmt: skip
    assert rc == 1
    assert "FAILED" in capsys.readouterr().err
    manifest, dets = _results(out)
    assert [os.path.basename(f["file_name"]) for f in manifest["failed"]] == ["broken.jpg"]
    assert "broken.jpg" in manifest["failed"][0]["error"]
    assert sorted(dets) == ["f32.tif", "grey.png", "rgb.jpg", "u16.png"]
    assert manifest["scaling"] == "minmax" and manifest["input_size"] == [96, 96]
    assert len(dets["grey.png"]) == 20  # the tiny config keeps 20 detections
    # the 16-bit and float copies, scaled back by minmax, are the 8-bit image again
    np.testing.assert_allclose(dets["u16.png"], dets["grey.png"], atol=1e-3)
    np.testing.assert_allclose(dets["f32.tif"], dets["grey.png"], atol=2e-2)
    assert not np.allclose(dets["rgb.jpg"][:, :4], dets["grey.png"][:, :4])
    written = sorted(os.listdir(out))
    assert written == sorted(
        ["coco_instances_results.json", "inputs.json", "f32.png", "grey.png", "rgb.png", "u16.png"]
    )
    assert not any(name.startswith(TEMP_PREFIX) for name in written)
    assert Image.open(os.path.join(out, "u16.png")).size == (96, 96)


def test_16bit_without_scaling_is_named_and_bad_overrides_fail(run_dir, tmp_path):
    path = str(tmp_path / "u16.png")
    Image.fromarray(_grey().astype(np.uint16) * 257).save(path)
    out = str(tmp_path / "out")
    argv = ["--run", run_dir, "--input", path, "--output", out, "--device", "cpu"]
    assert main(argv) == 1
    manifest, _ = _results(out)
    assert "scaling is 'none'" in manifest["failed"][0]["error"]
    with pytest.raises(ConfigOverrideError, match="Did you mean 'dataloader.image_scale'"):
        main(argv + ["dataloader.image_scal=[64,64]"])
    with pytest.raises(SystemExit):
        main(argv + ["--scaling", "log"])


@pytest.mark.parametrize("kind", ["png8", "tif16"])
def test_tiled_equals_untiled_where_no_object_is_cut(run_dir, tmp_path, kind):
    """A scene made of four images, cut into exactly those four windows."""
    parts = [_grey(seed) for seed in range(4)]
    scene = np.block([[parts[0], parts[1]], [parts[2], parts[3]]])
    folder = tmp_path / "parts"
    folder.mkdir()
    ext, scaling = (".png", "none") if kind == "png8" else (".tif", "db(0,100)")
    convert = (lambda a: a) if kind == "png8" else (lambda a: a.astype(np.uint16) * 200)
    for i, p in enumerate(parts):
        Image.fromarray(convert(p)).save(folder / f"part{i}{ext}")
    Image.fromarray(convert(scene)).save(tmp_path / f"scene{ext}")
    common = ["--run", run_dir, "--confidence-threshold", "0", "--device", "cpu"]
    common += ["--scaling", scaling]
    assert main(common + ["--input", str(folder), "--output", str(tmp_path / "a")]) == 0
    rc = main(
        common + ["--input", str(tmp_path / f"scene{ext}"), "--output", str(tmp_path / "b"),
                  "--tile", "96", "--overlap", "0", "--batch", "4",
                  "--merge", "nms", "--match-metric", "iou", "--match-threshold", "0.5"]
    )  # fmt: skip
    assert rc == 0
    _, untiled = _results(str(tmp_path / "a"))
    manifest, tiled = _results(str(tmp_path / "b"))
    assert manifest["images"][0]["tiles"] == 4
    expected = []
    for i in range(4):
        d = untiled[f"part{i}{ext}"].copy()
        d[:, 0] += 96 * (i % 2)
        d[:, 1] += 96 * (i // 2)
        expected += d.tolist()
    np.testing.assert_allclose(tiled[f"scene{ext}"], np.array(sorted(expected)), atol=2e-2)
