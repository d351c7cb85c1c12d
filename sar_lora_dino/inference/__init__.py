"""Running a trained detector on image files and whole SAR scenes (tools/infer.py)."""

from .merge import merge_detections, pairwise_overlap
from .predictor import Predictor
from .runner import expand_inputs, run_inference
from .scene import SceneReader, tile_windows

__all__ = [
    "Predictor",
    "SceneReader",
    "expand_inputs",
    "merge_detections",
    "pairwise_overlap",
    "run_inference",
    "tile_windows",
]
