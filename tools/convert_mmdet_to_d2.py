#!/usr/bin/env python
"""Convert a checkpoint of the original MMDetection RetinaNet to a detectron2 checkpoint."""

import argparse

from sar_lora_dino.checkpoint.mmdet import convert_mmdet_checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert the original's MMDetection RetinaNet checkpoint (LoRA tensors "
        "included) to detectron2 names, reordering each cell's 9 anchors from MMDetection's "
        "ratio-major to detectron2's size-major order. Load the result with "
        "train.init_checkpoint=OUT."
    )
    parser.add_argument("input", metavar="IN", help="MMDetection checkpoint (.pth)")
    parser.add_argument("output", metavar="OUT", help="detectron2 checkpoint to write (.pth)")
    args = parser.parse_args(argv)
    model = convert_mmdet_checkpoint(args.input, args.output)
    print(f"wrote {len(model)} tensors to {args.output}")


if __name__ == "__main__":
    main()
