#!/usr/bin/env python
"""Draw a run's pictures: loss and val AP over iterations, and predictions painted on images."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sar_lora_dino.reporting.painter import paint_predictions  # noqa: E402
from sar_lora_dino.reporting.plots import plot_training_curves  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output_dir", help="train.output_dir of the run")
    parser.add_argument("--dataset", default="sardet100k_val", help="evaluated dataset to paint")
    parser.add_argument("--num-images", type=int, default=6)
    parser.add_argument("--score-thresh", type=float, default=0.3)
    args = parser.parse_args(argv)

    metrics = os.path.join(args.output_dir, "metrics.json")
    if not os.path.isfile(metrics):
        sys.exit(f"error: {metrics} not found; is {args.output_dir} a training output folder?")
    curves = plot_training_curves(metrics, os.path.join(args.output_dir, "loss_and_ap.png"))
    print(f"Wrote {curves}")
    inference = os.path.join(args.output_dir, "inference", args.dataset)
    predictions = os.path.join(inference, "coco_instances_results.json")
    if os.path.isfile(predictions):
        import sar_lora_dino  # noqa: F401  (registers the datasets)

        painted = paint_predictions(
            predictions,
            args.dataset,
            os.path.join(args.output_dir, f"predictions_{args.dataset}.png"),
            num_images=args.num_images,
            score_thresh=args.score_thresh,
        )
        print(f"Wrote {painted}")
    else:
        print(f"No predictions at {predictions}: evaluate first to paint them.")


if __name__ == "__main__":
    main()
