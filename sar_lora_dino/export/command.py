"""The command line of tools/export_model.py: one trained model, several export formats."""

import argparse
import logging
import os
import sys

from .adapter import export_adapter, export_peft
from .merged import export_merged, merged_config
from .model import find_run_files, load_trained_model
from .onnx import export_onnx

__all__ = ["build_argument_parser", "main"]

logger = logging.getLogger("sar_lora_dino.export")


def build_argument_parser():
    parser = argparse.ArgumentParser(
        description="Export a trained detector: merged LoRA, adapter, peft format or ONNX.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""
Examples:
  tools/export_model.py --run output/lora_r16 --merged out/model_merged.pth --onnx out/model.onnx
  tools/export_model.py --config-file configs/sar_lora_dino/CONFIG.py --weights model_best.pth \\
      --adapter out/adapter.safetensors train.init_checkpoint=dinov3_convnext_small.pth
""",
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="LazyConfig (.py/.yaml)")
    parser.add_argument("--weights", default="", metavar="FILE", help="checkpoint or adapter")
    parser.add_argument("--run", default="", metavar="DIR", help="config.yaml + model_best.pth")
    parser.add_argument("--merged", default="", metavar="OUT.pth", help="LoRA folded in")
    parser.add_argument("--adapter", default="", metavar="OUT.safetensors")
    parser.add_argument("--peft-dir", default="", metavar="DIR", help="backbone LoRA for peft")
    parser.add_argument("--onnx", default="", metavar="OUT.onnx", help="merged model as ONNX")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --peft-dir")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value"
    )
    return parser


def main(argv=None) -> int:
    """Run the export command on ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = build_argument_parser().parse_args(argv)
    from detectron2.utils.logger import setup_logger

    setup_logger(name="sar_lora_dino")
    if not (args.merged or args.adapter or args.peft_dir or args.onnx):
        sys.exit("error: choose at least one of --merged, --adapter, --peft-dir, --onnx")
    config_file, weights = args.config_file, args.weights
    if args.run:
        if config_file or weights:
            sys.exit("error: --run replaces --config-file and --weights; give one or the other")
        config_file, weights = find_run_files(args.run)
    cfg, model = load_trained_model(config_file or None, weights, args.opts)
    if args.adapter:
        export_adapter(cfg, model, args.adapter)
        logger.info(f"Adapter: {args.adapter} ({os.path.getsize(args.adapter):,} bytes)")
    if args.peft_dir:
        export_peft(model, args.peft_dir, overwrite=args.overwrite)
        logger.info(f"peft adapter: {args.peft_dir}")
    if args.merged or args.onnx:
        # ONNX only: the merged checkpoint goes next to it
        merged_path = args.merged or os.path.splitext(args.onnx)[0] + "_merged.pth"
        config_path, plain = export_merged(cfg, model, merged_path)
        logger.info(
            f"Merged: {merged_path} ({os.path.getsize(merged_path):,} bytes), {config_path}"
        )
        if args.onnx:
            export_onnx(merged_config(cfg, model), plain, args.onnx)
            logger.info(f"ONNX: {args.onnx} ({os.path.getsize(args.onnx):,} bytes)")
    return 0
