#!/usr/bin/env python
"""Detect objects in SAR images, folders and whole scenes with a trained model."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sar_lora_dino.inference.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
