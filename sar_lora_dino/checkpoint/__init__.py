"""Reading checkpoints of every supported layout into our detectron2 models."""

from .adapter import is_adapter_file, load_adapter, read_adapter, save_adapter
from .checkpointer import MultiFormatCheckpointer, SARCheckpointer, find_convnext_backbone
from .dinov3 import load_dinov3_file
from .fingerprint import RANDOM_INIT, file_fingerprint, same_weights
