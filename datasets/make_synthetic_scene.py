#!/usr/bin/env python3
"""Write a large synthetic 16-bit SAR scene (uncompressed TIFF) and its targets as COCO JSON."""

import argparse
import json
import os
import sys
import time

import numpy as np

from sar_lora_dino.data.image_io import has_tifffile
from sar_lora_dino.data.sardet import SARDET100K_CATEGORIES
from sar_lora_dino.data.synthetic import render_sar_scene
from sar_lora_dino.utils.io import atomic_path, atomic_write


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="datasets/synthetic_scene.tif", help="TIFF to write")
    parser.add_argument("--size", type=int, default=6000, help="scene side in pixels")
    parser.add_argument("--num-objects", type=int, default=60)
    parser.add_argument(
        "--target-scale",
        type=float,
        default=800 / 256,
        help="target size relative to the 256 px training images (default: as in 800 px ones)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    scene, objects = render_sar_scene(rng, args.size, args.num_objects, args.target_scale)
    with atomic_path(args.out) as tmp:
        if has_tifffile():
            import tifffile

            tifffile.imwrite(tmp, scene, photometric="minisblack")
        else:
            from PIL import Image

            Image.fromarray(scene).save(tmp, format="TIFF")
    truth = os.path.splitext(args.out)[0] + ".json"
    coco = {
        "images": [
            {
                "id": 0,
                "file_name": os.path.basename(args.out),
                "width": args.size,
                "height": args.size,
            }
        ],
        "annotations": [
            {
                "id": i + 1,
                "image_id": 0,
                "category_id": c,
                "bbox": box,
                "area": round(box[2] * box[3], 2),
                "iscrowd": 0,
            }
            for i, (c, box) in enumerate(objects)
        ],
        "categories": [{"id": c["id"], "name": c["name"]} for c in SARDET100K_CATEGORIES],
    }
    atomic_write(truth, lambda f: json.dump(coco, f), mode="w")
    print(
        f"Wrote {args.out} ({args.size}x{args.size} uint16, {len(objects)} targets) and {truth} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
