#!/usr/bin/env python
"""Print each config's trainable and total parameters, as the paper's table counts them."""

import argparse
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from detectron2.config import LazyConfig, instantiate  # noqa: E402

from sar_lora_dino.engine import count_parameters  # noqa: E402


def main(argv=None):
    """
    Args:
        argv (list[str] or None): config files (default: every file in configs/sar_lora_dino/).
    """
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "configs",
        nargs="*",
        default=sorted(glob.glob(os.path.join(repo, "configs", "sar_lora_dino", "*.py"))),
    )
    args = parser.parse_args(argv)
    print(f"| {'config':<70} | {'trainable':>12} | {'M':>7} | {'total':>12} |")
    print(f"| {'-' * 70} | {'-' * 12}:| {'-' * 7}:| {'-' * 12}:|")
    for path in args.configs:
        cfg = LazyConfig.load(path)
        trainable, total = count_parameters(instantiate(cfg.model))
        name = os.path.splitext(os.path.basename(path))[0]
        print(f"| {name:<70} | {trainable:>12,} | {trainable / 1e6:>7.3f} | {total:>12,} |")


if __name__ == "__main__":
    main()
