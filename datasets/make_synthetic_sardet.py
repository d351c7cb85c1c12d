#!/usr/bin/env python3
"""Write a synthetic SAR detection set in the SARDet-100K layout, and a contact sheet of it."""

import argparse
import os
import sys
import time

from sar_lora_dino.data import make_synthetic_sardet, register_sardet100k
from sar_lora_dino.reporting.painter import draw_contact_sheet


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="datasets/synthetic_sardet", help="root to create")
    parser.add_argument("--num-train", type=int, default=300)
    parser.add_argument("--num-val", type=int, default=50)
    parser.add_argument("--num-test", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 800])
    parser.add_argument("--formats", nargs="+", default=["jpg", "png", "bmp"])
    parser.add_argument("--max-objects", type=int, default=4)
    parser.add_argument("--looks", type=float, default=4.0, help="speckle looks (lower: noisier)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument(
        "--contact-sheet",
        default=None,
        help="PNG of a few training images with boxes (default: <out>/contact_sheet.png;"
        " 'none' to skip)",
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    summary = make_synthetic_sardet(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        num_test=args.num_test,
        seed=args.seed,
        sizes=tuple(args.sizes),
        formats=tuple(args.formats),
        max_objects=args.max_objects,
        looks=args.looks,
        overwrite=args.overwrite,
    )
    print(f"Wrote {args.out} in {time.perf_counter() - start:.1f} s: {summary}")
    sheet = args.contact_sheet or os.path.join(args.out, "contact_sheet.png")
    if sheet != "none" and summary:
        split = next(iter(summary))
        (name,) = register_sardet100k(args.out, prefix="synthetic_sardet_sheet", splits=[split])
        draw_contact_sheet(name, sheet, num_images=9, cols=3)
        print(f"Contact sheet: {sheet}")
    print(f"Use it with: export SARDET100K_ROOT={os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
