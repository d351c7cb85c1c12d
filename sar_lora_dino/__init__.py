"""SAR-LoRA-DINO: LoRA fine-tuning of DINOv3 ConvNeXt backbones for SAR detection in detectron2.

Importing the package registers the ConvNeXt backbone and the SARDet-100K datasets.
"""

from . import checkpoint, data, modeling  # noqa: F401  (registration side effects)

__version__ = "0.1.0"
