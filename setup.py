"""Install the sar_lora_dino package (detectron2 is installed separately: see the Makefile)."""

from setuptools import find_packages, setup

setup(
    name="sar_lora_dino",
    version="0.1.0",
    description="LoRA fine-tuning of a DINOv3 ConvNeXt-S backbone for SAR object detection "
    "(RetinaNet + FPN on SARDet-100K), as a detectron2 extension",
    packages=find_packages(include=("sar_lora_dino", "sar_lora_dino.*")),
    python_requires=">=3.10",
    install_requires=[
        "torch",
        "torchvision",
        "timm>=1.0.20",
        "fvcore",
        "pycocotools",
        "numpy",
        "opencv-python-headless",
        "matplotlib",
        "safetensors",
        "tqdm",
    ],
    extras_require={"dev": ["pytest", "ruff"]},
)
