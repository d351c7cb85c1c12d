"""Training, evaluation, distributed launch and reporting for LazyConfig detectors."""

from .checkpointing import TrainingCheckpointer
from .evaluation import count_parameters, evaluate
from .hooks import BestCheckpointer, CheckpointOnSignal, TrainingStopped
from .launch import launch
from .overrides import ConfigOverrideError, apply_overrides
from .train_net import build_argument_parser, do_eval, do_train, load_config, main, setup
from .trainer import MixedPrecisionTrainer

__all__ = [
    "BestCheckpointer",
    "CheckpointOnSignal",
    "ConfigOverrideError",
    "MixedPrecisionTrainer",
    "TrainingCheckpointer",
    "TrainingStopped",
    "apply_overrides",
    "build_argument_parser",
    "count_parameters",
    "do_eval",
    "do_train",
    "evaluate",
    "launch",
    "load_config",
    "main",
    "setup",
]
