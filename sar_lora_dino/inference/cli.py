"""The command line of tools/infer.py."""

import argparse
import logging
import sys

import torch

from sar_lora_dino.data.scaling import SCALING_HELP, parse_scaling
from sar_lora_dino.engine.defaults import load_config
from sar_lora_dino.export.model import find_run_files

from .merge import MATCH_METRICS, MERGE_METHODS
from .predictor import Predictor
from .runner import expand_inputs, run_inference

__all__ = ["build_argument_parser", "main"]

logger = logging.getLogger("sar_lora_dino.inference")

_EPILOG = """
Examples:
  A training run's folder (its config.yaml and model_best.pth) on a folder of images:
    tools/infer.py --run output/demo/run --input my_images/ --output predictions/
  A 16-bit scene cut into 800 px windows that share 200 px, merged across windows:
    tools/infer.py --run RUN --input scene.tif --output out/ --tile 800 --overlap 200 \\
        --scaling "db(-25,5)"
  A config and weights, with a checked config override:
    tools/infer.py --config-file configs/sar_lora_dino/CONFIG.py --weights model.pth \\
        --input "data/*.png" --output out/ model.test_nms_thresh=0.4
"""


def build_argument_parser():
    p = argparse.ArgumentParser(
        description="Detect objects in SAR images, folders and whole scenes with a trained model.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model = p.add_argument_group("model (a run folder, or a config and weights)")
    model.add_argument("--run", metavar="DIR", help="training output folder")
    model.add_argument("--config-file", metavar="FILE", help="a .py config or a run's config.yaml")
    model.add_argument("--weights", metavar="FILE", help="any checkpoint the project reads")
    p.add_argument("--input", nargs="+", required=True, help="image files, folders or globs")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for the results")
    p.add_argument("--confidence-threshold", type=float, default=0.5)
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--batch", type=int, default=1, help="images or windows per forward pass")
    p.add_argument("--scaling", default=None, help=f"sets dataloader.scaling: {SCALING_HELP}")
    tiles = p.add_argument_group("large scenes")
    tiles.add_argument("--tile", type=int, default=None, metavar="SIZE", help="window side (px)")
    tiles.add_argument("--overlap", type=int, default=0, metavar="PX", help="shared by windows")
    tiles.add_argument("--merge", choices=MERGE_METHODS, default="greedy_nmm")
    tiles.add_argument("--match-metric", choices=MATCH_METRICS, default="ios")
    tiles.add_argument("--match-threshold", type=float, default=0.5)
    p.add_argument("--picture-size", type=int, default=2000, help="longest side of pictures")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides key=value")
    return p


def main(argv=None):
    """
    Returns:
        int: 0 when every input was processed, 1 when some failed, 2 on a usage error.
    """
    parser = build_argument_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.run and (args.config_file or args.weights):
        parser.error("give either --run or --config-file with --weights, not both")
    if not args.run and not (args.config_file and args.weights):
        parser.error("give --run DIR, or --config-file and --weights")
    if args.batch < 1:
        parser.error("--batch must be >= 1")
    if args.tile is not None and (args.tile <= 0 or not 0 <= args.overlap < args.tile):
        parser.error("--tile must be > 0 and 0 <= --overlap < --tile")
    if args.scaling is not None:
        try:
            parse_scaling(args.scaling)
        except ValueError as e:
            parser.error(f"--scaling: {e}")
    if args.run:
        config_file, weights = find_run_files(args.run)
    else:
        config_file, weights = args.config_file, args.weights
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = load_config(config_file, args.opts)
    if args.scaling is not None:
        cfg.dataloader.scaling = args.scaling
        cfg.dataloader.test.mapper.scaling = args.scaling
    cfg.model.test_score_thresh = args.confidence_threshold
    cfg.train.device = device
    files, unmatched = expand_inputs(args.input)
    for spec in unmatched:
        logger.error(f"--input {spec}: no such file, or no image in it")
    predictor = Predictor(cfg, weights)
    tiling = f"; {args.tile} px windows, {args.overlap} px overlap" if args.tile else ""
    logger.info(
        f"{len(files)} input(s); weights {weights}; scaling {predictor.scaling}; "
        f"device {device}{tiling}"
    )
    manifest = run_inference(
        predictor,
        files,
        args.output,
        tile=args.tile,
        overlap=args.overlap,
        batch=args.batch,
        merge=args.merge,
        match_metric=args.match_metric,
        match_threshold=args.match_threshold,
        picture_size=args.picture_size,
    )
    failed = len(manifest["failed"]) + len(unmatched)
    done = len(manifest["images"])
    detections = sum(r["detections"] for r in manifest["images"])
    print(
        f"{done} input(s) done, {failed} failed; {detections} detection(s); "
        f"peak RSS {manifest['peak_rss_mib']} MiB; results in {args.output}"
    )
    for f in manifest["failed"]:
        print(f"FAILED {f['file_name']}: {f['error']}", file=sys.stderr)
    return 1 if failed else 0
