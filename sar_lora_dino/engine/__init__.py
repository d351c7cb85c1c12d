"""Training, evaluation and distributed launch for LazyConfig detectors."""

from .checkpointing import CheckpointMismatchError, TrainingCheckpointer
from .defaults import build_argument_parser, load_config, setup
from .evaluation import count_parameters, evaluate
from .hooks import BestCheckpointer, CheckpointOnSignal, PeriodicCheckpointer, TrainingStopped
from .launch import launch
from .overrides import ConfigOverrideError, apply_overrides
from .sampler import ResumableTrainingSampler, build_resumable_train_loader
from .train_net import do_eval, do_train, main
from .trainer import MixedPrecisionTrainer, NonFiniteLossError

__all__ = [k for k in globals().keys() if not k.startswith("_")]  # as detectron2.engine does
