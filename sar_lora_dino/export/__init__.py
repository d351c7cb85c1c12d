"""Exports of a trained detector: merged LoRA, adapter files, peft's format and ONNX."""

from .adapter import export_adapter, export_peft
from .merged import export_merged, merged_config
from .model import (
    build_trained_model,
    config_to_yaml,
    find_run_files,
    load_trained_model,
)

__all__ = [
    "config_to_yaml",
    "export_adapter",
    "export_merged",
    "export_peft",
    "find_run_files",
    "build_trained_model",
    "load_trained_model",
    "merged_config",
]
