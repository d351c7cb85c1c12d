"""Install the sar_lora_dino package (detectron2 is installed separately: see the Makefile)."""

import os
import shutil

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ONNX_EXTRA = ["onnx", "onnxruntime"]
GEO_EXTRA = ["rasterio", "tifffile"]


def link_configs():
    """
    Put the top-level configs/ inside the package (a link, or a copy where links fail) so that an
    installed package carries them, as detectron2's setup.py does for its model zoo.

    Returns:
        list[str]: package-data globs of the configs.
    """
    source = os.path.join(HERE, "configs")
    target = os.path.join(HERE, "sar_lora_dino", "configs")
    if os.path.isdir(source):  # building from the source tree, not from an unpacked sdist
        if os.path.islink(target):
            os.unlink(target)
        elif os.path.isdir(target):
            shutil.rmtree(target)
        try:
            os.symlink(os.path.join("..", "configs"), target)
        except OSError:
            shutil.copytree(source, target)
    return ["configs/**/*.py"]


setup(
    name="sar_lora_dino",
    version="0.1.0",
    description="LoRA fine-tuning of a DINOv3 ConvNeXt-S backbone for SAR object detection "
    "(RetinaNet + FPN on SARDet-100K), as a detectron2 extension",
    packages=find_packages(include=("sar_lora_dino", "sar_lora_dino.*")),
    package_data={"sar_lora_dino": link_configs()},
    python_requires=">=3.10",
    install_requires=[
        "torch",
        "torchvision",
        "timm>=1.0.20",
        "fvcore",
        "pycocotools",
        "faster-coco-eval>=1.6",
        "numpy",
        "opencv-python-headless",
        "matplotlib",
        "safetensors",
        "tqdm",
    ],
    extras_require={
        # tools/export_model.py --onnx writes the graph with torch alone; these add its metadata
        # and run it (the parity test).
        "onnx": ONNX_EXTRA,
        # onnxruntime, tifffile and rasterio install in seconds, so the ONNX parity, TIFF
        # memory-map and GeoTIFF tests run in CI too
        "dev": ["pytest", "ruff", *ONNX_EXTRA, *GEO_EXTRA],
        # big TIFFs read one window at a time (memory map); multi-channel 16-bit/float TIFFs
        "tiff": ["tifffile"],
        # GeoTIFF products: windowed reads, CRS and transform, GeoJSON output of tools/infer.py
        "geo": GEO_EXTRA,
    },
)
