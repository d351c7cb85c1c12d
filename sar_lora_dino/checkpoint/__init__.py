"""Reading checkpoints of every supported layout into our detectron2 models."""

from .adapter import is_adapter_file, load_adapter, read_adapter, save_adapter
from .checkpointer import MultiFormatCheckpointer, SARCheckpointer, find_convnext_backbone
from .dinov3 import (
    DINOV3_LAYOUTS,
    convert_dinov3_state_dict,
    detect_dinov3_layout,
    load_dinov3_file,
    read_checkpoint_file,
    unwrap_state_dict,
)
from .fingerprint import RANDOM_INIT, file_fingerprint, same_weights
