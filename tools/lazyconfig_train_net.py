#!/usr/bin/env python
"""Train or evaluate a detector from a LazyConfig file, on GPUs (NCCL) or CPU processes (gloo)."""

import os
import sys

# Run from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import sar_lora_dino  # noqa: E402,F401  (registers the backbone and the SARDet-100K datasets)
from sar_lora_dino.engine import (  # noqa: E402
    ConfigOverrideError,
    build_argument_parser,
    launch,
    load_config,
)
from sar_lora_dino.engine import main as run  # noqa: E402


def cli(argv=None):
    """
    Parse the command line, check the config and its overrides once, then start the processes.

    Args:
        argv (list[str] or None): arguments (default ``sys.argv[1:]``).
    """
    args = build_argument_parser().parse_args(argv)
    try:
        load_config(args.config_file, args.opts)  # fail here, not in every spawned process
    except (ConfigOverrideError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    try:
        launch(
            run,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
    except ValueError as e:
        if "--num-gpus" not in str(e):
            raise
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    cli()
