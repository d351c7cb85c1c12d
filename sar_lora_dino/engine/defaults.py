"""What every process does first: argument parser, config loading and setup, as detectron2's."""

import logging
import os
import tempfile

import torch
from detectron2.config import LazyConfig
from detectron2.engine import default_argument_parser
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger

from sar_lora_dino.export.model import config_to_yaml
from sar_lora_dino.utils.io import TEMP_PREFIX, atomic_write

from .overrides import apply_overrides

__all__ = ["build_argument_parser", "load_config", "setup"]

logger = logging.getLogger("detectron2")


def build_argument_parser():
    """detectron2's ``default_argument_parser`` with our examples and ``--weights``."""
    parser = default_argument_parser(
        epilog="""
Examples:
  Train (CPU processes with gloo when there is no GPU):
    tools/lazyconfig_train_net.py --config-file configs/sar_lora_dino/CONFIG.py --num-gpus 8
  Continue a stopped run from its last checkpoint:
    tools/lazyconfig_train_net.py --config-file CONFIG.py --resume train.output_dir=DIR
  Evaluate a checkpoint on the test split:
    tools/lazyconfig_train_net.py --config-file CONFIG.py --eval-only \\
        train.init_checkpoint=DIR/model_best.pth dataloader.test.dataset.names=sardet100k_test
  Evaluate an adapter (tools/export_model.py --adapter) over its base weights:
    tools/lazyconfig_train_net.py --config-file CONFIG.py --eval-only \
        --weights adapter.safetensors train.init_checkpoint=BASE.pth
"""
    )
    parser.add_argument(
        "--weights",
        default="",
        metavar="FILE",
        help="with --eval-only: the weights to evaluate (e.g. an adapter); "
        "train.init_checkpoint is then the base they load over",
    )
    return parser


def load_config(config_file, overrides=()):
    """Load a LazyConfig ``.py`` file and apply checked overrides (:func:`apply_overrides`)."""
    if not config_file or not os.path.isfile(config_file):
        raise FileNotFoundError(f"--config-file: no such config file {config_file!r}")
    return apply_overrides(LazyConfig.load(config_file), overrides)


def _resolve_device(cfg):
    device = str(cfg.train.get("device", "auto") or "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        logger.info(f"train.device={device} but CUDA is not available: running on the CPU.")
        device = "cpu"
    cfg.train.device = device
    return device


def _check_writable(output_dir):
    try:
        os.makedirs(output_dir, exist_ok=True)
        tempfile.TemporaryFile(dir=output_dir, prefix=TEMP_PREFIX).close()
    except OSError as e:
        raise PermissionError(
            f"train.output_dir={output_dir!r}: cannot create or write the output folder ({e}); "
            "choose another folder."
        ) from e


def setup(cfg, args):
    """
    Prepare a process: output folder (must be writable), loggers (console on rank 0,
    ``log.txt`` per rank), the resolved config saved as ``config.yaml``, the random seed
    (``train.seed`` + rank; < 0 means random) and the device (``train.device``: "auto", "cpu",
    "cuda"; CPU when CUDA is absent).
    """
    output_dir = cfg.train.output_dir
    rank = comm.get_rank()
    if comm.is_main_process():
        _check_writable(output_dir)
    comm.synchronize()
    setup_logger(output_dir, distributed_rank=rank, name="fvcore")
    setup_logger(output_dir, distributed_rank=rank, name="sar_lora_dino")
    setup_logger(output_dir, distributed_rank=rank, name="detectron2", abbrev_name="d2")
    logger.info(f"Rank {rank} of {comm.get_world_size()}; command line: {args}")
    device = _resolve_device(cfg)
    if comm.is_main_process():
        path = os.path.join(output_dir, "config.yaml")
        try:
            text = config_to_yaml(cfg)
        except ValueError as e:
            logger.warning(f"{path} not written: {e}")
        else:
            atomic_write(path, lambda f: f.write(text), mode="w")
            logger.info(f"Full config saved to {path}")
    seed = cfg.train.get("seed", -1)
    seed_all_rng(None if seed is None or seed < 0 else seed + rank)
    logger.info(f"Device: {device}")
