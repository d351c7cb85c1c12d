"""SAR-LoRA-DINO: LoRA fine-tuning of DINOv3 ConvNeXt backbones for SAR detection in detectron2.

Importing the package registers the ConvNeXt backbone and the SARDet-100K datasets.
"""

import warnings

with warnings.catch_warnings():
    # fvcore (through detectron2) applies torch.jit.script at import time, which recent torch
    # reports as deprecated on every command; it changes nothing we compute.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated")
    from . import checkpoint, data, modeling  # noqa: F401  (registration side effects)

__version__ = "0.1.0"
