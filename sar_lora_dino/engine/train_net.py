"""Training and evaluation from a LazyConfig: the logic of tools/lazyconfig_train_net.py."""

import logging
import os

import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.engine import default_argument_parser, default_writers, hooks
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger
from torch.nn.parallel import DistributedDataParallel

from sar_lora_dino.utils.io import atomic_path

from .checkpointing import TrainingCheckpointer
from .evaluation import count_parameters, evaluate
from .hooks import BestCheckpointer, CheckpointOnSignal
from .overrides import apply_overrides
from .trainer import MixedPrecisionTrainer

__all__ = ["build_argument_parser", "load_config", "setup", "do_train", "do_eval", "main"]

logger = logging.getLogger("detectron2")


def build_argument_parser():
    """
    Returns:
        argparse.ArgumentParser: detectron2's command line (``--config-file``, ``--eval-only``,
        ``--resume``, ``--num-gpus``, ``--num-machines``, ``--machine-rank``, ``--dist-url`` and
        trailing ``key=value`` overrides).
    """
    parser = default_argument_parser(
        epilog="""
Examples:
  Train (CPU processes with gloo when there is no GPU):
    tools/lazyconfig_train_net.py --config-file configs/sar_lora_dino/CONFIG.py --num-gpus 8
  Continue a stopped run from its last checkpoint:
    tools/lazyconfig_train_net.py --config-file CONFIG.py --resume train.output_dir=DIR
  Evaluate a checkpoint on the test split:
    tools/lazyconfig_train_net.py --config-file CONFIG.py --eval-only \\
        train.init_checkpoint=DIR/model_best.pth dataloader.test.dataset.names=sardet100k_test
  Evaluate an adapter (tools/export_model.py --adapter) over its base weights:
    tools/lazyconfig_train_net.py --config-file CONFIG.py --eval-only \
        --weights adapter.safetensors train.init_checkpoint=BASE.pth
"""
    )
    parser.add_argument(
        "--weights",
        default="",
        metavar="FILE",
        help="with --eval-only: the weights to evaluate (e.g. an adapter); "
        "train.init_checkpoint is then the base they load over",
    )
    return parser


def load_config(config_file, overrides=()):
    """
    Load a LazyConfig and apply checked ``key=value`` overrides.

    Args:
        config_file (str): path of the ``.py`` config.
        overrides (list[str]): overrides; see :func:`apply_overrides`.

    Returns:
        DictConfig
    """
    if not config_file or not os.path.isfile(config_file):
        raise FileNotFoundError(f"--config-file: no such config file {config_file!r}")
    cfg = LazyConfig.load(config_file)
    return apply_overrides(cfg, overrides)


def _resolve_device(cfg):
    device = str(cfg.train.get("device", "cuda"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        logger.info(f"train.device={device} but CUDA is not available: running on the CPU.")
        device = "cpu"
    cfg.train.device = device
    return device


def setup(cfg, args):
    """
    Prepare a process: output folder, loggers (console on rank 0, ``log.txt`` per rank), the
    resolved config saved as ``config.yaml``, the random seed (``train.seed`` + rank; < 0 means
    random) and the device (``train.device``, CPU when CUDA is absent).

    Args:
        cfg (DictConfig): the config.
        args (argparse.Namespace): parsed command line.
    """
    output_dir = cfg.train.output_dir
    rank = comm.get_rank()
    if comm.is_main_process():
        os.makedirs(output_dir, exist_ok=True)
    comm.synchronize()
    setup_logger(output_dir, distributed_rank=rank, name="fvcore")
    setup_logger(output_dir, distributed_rank=rank, name="sar_lora_dino")
    setup_logger(output_dir, distributed_rank=rank, name="detectron2", abbrev_name="d2")
    logger.info(f"Rank {rank} of {comm.get_world_size()}; command line: {args}")
    device = _resolve_device(cfg)
    if comm.is_main_process():
        path = os.path.join(output_dir, "config.yaml")
        with atomic_path(path) as tmp:
            # On objects YAML cannot hold, LazyConfig.save writes tmp + ".pkl" instead of tmp.
            LazyConfig.save(cfg, tmp)
            saved = os.path.getsize(tmp) > 0
            if os.path.exists(tmp + ".pkl"):
                os.remove(tmp + ".pkl")
        if saved:
            logger.info(f"Full config saved to {path}")
    seed = cfg.train.get("seed", -1)
    seed_all_rng(None if seed is None or seed < 0 else seed + rank)
    logger.info(f"Device: {device}")


def _run_info(cfg, args, **extra):
    config_file = getattr(args, "config_file", "") if args is not None else ""
    return {
        "config_file": config_file,
        "setting": os.path.splitext(os.path.basename(config_file))[0],
        "overrides": list(getattr(args, "opts", None) or []),
        "seed": cfg.train.get("seed"),
        "world_size": comm.get_world_size(),
        "device": cfg.train.device,
        **extra,
    }


def _wrap_ddp(model, cfg):
    if comm.get_world_size() == 1:
        return model
    kwargs = dict(cfg.train.get("ddp") or {})
    fp16_compression = kwargs.pop("fp16_compression", False)
    if cfg.train.device.startswith("cuda"):
        kwargs.setdefault("device_ids", [comm.get_local_rank()])
    ddp = DistributedDataParallel(model, **kwargs)
    if fp16_compression:
        from torch.distributed.algorithms.ddp_comm_hooks import default as comm_hooks

        ddp.register_comm_hook(state=None, hook=comm_hooks.fp16_compress_hook)
    return ddp


def do_train(cfg, args=None, resume=False, extra_hooks=()):
    """
    Train ``cfg.model`` as the config says, evaluating every ``train.eval_period`` iterations.

    Writes into ``train.output_dir``: periodic checkpoints (``train.checkpointer``),
    ``model_final.pth``, ``model_best.pth`` (by ``train.best_checkpointer``, default bbox/AP max),
    ``metrics.json``, TensorBoard events, ``log.txt`` and the evaluation results. On SIGTERM or
    SIGINT it saves the current state and stops, so ``--resume`` loses nothing.

    Args:
        cfg (DictConfig): the config (after :func:`setup`).
        args (argparse.Namespace or None): command line, recorded in the metrics files.
        resume (bool): continue from ``last_checkpoint`` in ``train.output_dir`` (model,
            optimizer, LR schedule, iteration, best metric); without one, start from
            ``train.init_checkpoint``.
        extra_hooks (list[HookBase]): hooks registered after the standard ones.

    Returns:
        dict: the last evaluation results (rank 0).
    """
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    trainable, total = count_parameters(model)
    logger.info(f"Model: {trainable:,} trainable of {total:,} parameters")
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)

    model = _wrap_ddp(model, cfg)
    amp = cfg.train.get("amp") or {}
    trainer = MixedPrecisionTrainer(
        model,
        train_loader,
        optimizer,
        amp_enabled=bool(amp.get("enabled", False)),
        amp_dtype=amp.get("dtype", "float16"),
        clip_grad=cfg.train.get("clip_grad"),
        device=cfg.train.device,
    )
    checkpointer = TrainingCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    best = dict(cfg.train.get("best_checkpointer") or {"metric": "bbox/AP", "mode": "max"})
    last_results = {}

    def eval_fn():
        # the last finished iteration, as checkpoints count it (after_train sees max_iter)
        iteration = min(trainer.iter, cfg.train.max_iter - 1)
        info = _run_info(cfg, args, iteration=iteration, checkpoint="(in training)")
        last_results.clear()
        last_results.update(evaluate(cfg, model, run_info=info))
        return last_results

    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            hooks.EvalHook(cfg.train.eval_period, eval_fn),
            BestCheckpointer(checkpointer, **best),
            hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer)
            if comm.is_main_process()
            else None,
            hooks.PeriodicWriter(
                default_writers(cfg.train.output_dir, cfg.train.max_iter),
                period=cfg.train.log_period,
            )
            if comm.is_main_process()
            else None,
            CheckpointOnSignal(checkpointer),
            *extra_hooks,
        ]
    )
    if not cfg.train.init_checkpoint and not (resume and checkpointer.has_checkpoint()):
        logger.warning(
            "train.init_checkpoint is empty: the backbone starts from RANDOM weights, not "
            "DINOv3. Set DINOV3_WEIGHTS or train.init_checkpoint=PATH to reproduce the paper."
        )
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=resume)
    if resume and checkpointer.has_checkpoint():
        # a checkpoint stores the iteration that had just finished
        start_iter = trainer.iter + 1
        logger.info(f"Resuming from iteration {start_iter}")
        if start_iter >= cfg.train.max_iter:
            logger.info("The run had already finished: only the final evaluation runs again.")
    else:
        start_iter = 0
    trainer.train(start_iter, cfg.train.max_iter)
    return dict(last_results)


def do_eval(cfg, args=None):
    """
    Load ``train.init_checkpoint`` (any format the project's checkpointer reads), or
    ``args.weights`` over it as the base (an adapter), and evaluate every dataset of
    ``dataloader.test``.

    Args:
        cfg (DictConfig): the config (after :func:`setup`).
        args (argparse.Namespace or None): command line, recorded in the metrics files.

    Returns:
        dict: evaluation results (rank 0).
    """
    weights = getattr(args, "weights", "") or ""
    checkpoint = weights or cfg.train.get("init_checkpoint")
    if not checkpoint:
        raise ValueError(
            "--eval-only needs the weights to evaluate: --weights FILE or "
            "train.init_checkpoint=PATH"
        )
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    base = cfg.train.get("init_checkpoint") if weights else None
    extra = TrainingCheckpointer(model, base_checkpoint=base).load(checkpoint, checkpointables=[])
    info = _run_info(cfg, args, iteration=(extra or {}).get("iteration"), checkpoint=checkpoint)
    return evaluate(cfg, model, run_info=info)


def main(args):
    """
    Entry point run in every process: load the config, set up, then train or evaluate.

    Args:
        args (argparse.Namespace): from :func:`build_argument_parser`.
    """
    cfg = load_config(args.config_file, args.opts)
    setup(cfg, args)
    if args.eval_only:
        return do_eval(cfg, args)
    return do_train(cfg, args, resume=args.resume)
