#!/usr/bin/env python
"""Tabulate the COCO metrics of several runs (e.g. 3 seeds per setting) as Markdown and TSV."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sar_lora_dino.reporting.results_table import (  # noqa: E402
    collect_runs,
    format_markdown,
    format_tsv,
    summarize,
)
from sar_lora_dino.utils.io import atomic_write  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="Example: tools/summarize_runs.py output/*/seed* --out results/table",
    )
    parser.add_argument("runs", nargs="+", help="run folders, coco_metrics.json files or globs")
    parser.add_argument("--out", default=None, help="write OUT.md and OUT.tsv (default: print)")
    parser.add_argument(
        "--group-by",
        choices=["setting", "dir"],
        default="setting",
        help="'setting': config name + training overrides stored in each file; 'dir': the "
        "folder above each seed folder (RUNS/SETTING/SEED)",
    )
    parser.add_argument(
        "--separate-weights",
        action="store_true",
        help="one row per (setting, initial weights) instead of refusing to average runs that "
        "started from different weights",
    )
    args = parser.parse_args(argv)
    try:
        records = collect_runs(args.runs, group_by=args.group_by)
        if not records:
            sys.exit(f"error: no coco_metrics.json under {' '.join(args.runs)}")
        table = summarize(records, separate_weights=args.separate_weights)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    markdown, tsv = format_markdown(table), format_tsv(table)
    print(f"{len(records)} metrics files, {len(table)} (setting, split) groups\n")
    print(markdown)
    if args.out:
        atomic_write(args.out + ".md", lambda f: f.write(markdown), mode="w")
        atomic_write(args.out + ".tsv", lambda f: f.write(tsv), mode="w")
        print(f"Wrote {args.out}.md and {args.out}.tsv")


if __name__ == "__main__":
    main()
