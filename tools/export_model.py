#!/usr/bin/env python
"""Export a trained detector: merged LoRA checkpoint, adapter, peft-format adapter or ONNX."""

import os
import sys

# Run from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import sar_lora_dino  # noqa: E402,F401  (registers the backbone and the SARDet-100K datasets)
from sar_lora_dino.engine import ConfigOverrideError  # noqa: E402
from sar_lora_dino.export.command import main  # noqa: E402

if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ConfigOverrideError, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
