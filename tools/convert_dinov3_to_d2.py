#!/usr/bin/env python
"""Convert DINOv3 ConvNeXt weights (official, timm or HF layout) to a detectron2 checkpoint."""

import argparse

import torch

from sar_lora_dino.checkpoint.dinov3 import load_dinov3_file
from sar_lora_dino.utils.io import atomic_write

AUTHOR = "sar_lora_dino tools/convert_dinov3_to_d2.py"


def convert(src: str, dst: str, prefix: str = "backbone.bottom_up.") -> int:
    """
    Write ``{"model": {prefix + timm key: tensor}, ...}`` to ``dst`` atomically.

    Args:
        src (str): DINOv3 ConvNeXt weight file (.pth/.pt/.bin/.safetensors).
        dst (str): detectron2 checkpoint to write.
        prefix (str): where the backbone sits in the detectron2 model.

    Returns:
        int: number of tensors written.
    """
    weights = load_dinov3_file(src)
    checkpoint = {
        "model": {prefix + k: v.contiguous() for k, v in weights.items()},
        "__author__": AUTHOR,
        "matching_heuristics": False,
    }
    atomic_write(dst, lambda f: torch.save(checkpoint, f))
    return len(weights)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert DINOv3 ConvNeXt weights in any released layout to a detectron2 "
        "checkpoint usable as train.init_checkpoint (also by detectron2's stock tools). The "
        "final norm is dropped; LoRA adapters, FPN and head are not in the file."
    )
    parser.add_argument("input", metavar="IN", help="DINOv3 weights (.pth/.pt/.bin/.safetensors)")
    parser.add_argument("output", metavar="OUT", help="detectron2 checkpoint to write (.pth)")
    parser.add_argument(
        "--prefix",
        default="backbone.bottom_up.",
        help="state-dict prefix of the ConvNeXt inside the model (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    n = convert(args.input, args.output, args.prefix)
    print(f"wrote {n} tensors to {args.output}")


if __name__ == "__main__":
    main()
