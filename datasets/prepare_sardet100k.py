#!/usr/bin/env python3
"""Check a downloaded SARDet-100K copy, or write a smaller copy of it for smoke runs."""

import argparse
import json
import os
import sys

from sar_lora_dino.data.check import (
    PUBLISHED_COUNTS,
    check_sardet_root,
    format_report,
    write_subset,
)
from sar_lora_dino.data.sardet import get_sardet100k_root
from sar_lora_dino.data.scaling import SCALING_HELP
from sar_lora_dino.utils.io import atomic_write


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--root",
        default=get_sardet100k_root(),
        help="dataset root (default: $SARDET100K_ROOT, "
        "$DETECTRON2_DATASETS/SARDet_100K or datasets/SARDet_100K)",
    )
    parser.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    parser.add_argument(
        "--no-expected-counts",
        action="store_true",
        help="do not compare with the published counts (subsets, synthetic sets)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="read image headers only (misses truncated files)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="also write the full report to this JSON file")
    parser.add_argument(
        "--scaling",
        default="none",
        help="the dataloader.scaling training will use; 16-bit/float images are reported with "
        f"what it does to them. {SCALING_HELP}",
    )
    parser.add_argument(
        "--subset",
        type=int,
        metavar="N",
        help="instead of checking, copy N train images and N//5 val images",
    )
    parser.add_argument("--out", help="where --subset writes (default: <root>_subset<N>)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.subset is not None:
        out = args.out or f"{args.root.rstrip('/')}_subset{args.subset}"
        counts = {"train": args.subset, "val": max(1, args.subset // 5)}
        summary = write_subset(args.root, out, counts, seed=args.seed)
        print(f"Wrote {out}: {summary}")
        print(f"Use it with: export SARDET100K_ROOT={out}")
        return 0

    expected = None if args.no_expected_counts else PUBLISHED_COUNTS
    report = check_sardet_root(
        args.root,
        args.splits,
        expected=expected,
        full_decode=not args.quick,
        workers=args.workers,
        scaling=args.scaling,
    )
    print(format_report(report))
    if args.json:
        atomic_write(args.json, lambda f: json.dump(report, f, indent=1), mode="w")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
