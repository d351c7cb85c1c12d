"""Training and evaluation from a LazyConfig: the logic of tools/lazyconfig_train_net.py."""

import logging
import os
import pickle
import sys

from detectron2.config import instantiate
from detectron2.data import DatasetCatalog
from detectron2.engine import create_ddp_model, hooks
from detectron2.evaluation.testing import flatten_results_dict
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, TensorboardXWriter

from sar_lora_dino.checkpoint.fingerprint import RANDOM_INIT, file_fingerprint

from .checkpointing import TrainingCheckpointer, clean_stale_temps
from .defaults import load_config, setup
from .evaluation import count_parameters, evaluate, test_dataset_names
from .hooks import BestCheckpointer, CheckpointOnSignal, PeriodicCheckpointer, save_state
from .trainer import MixedPrecisionTrainer, rng_preserved
from .writers import ProvenanceJSONWriter

__all__ = ["do_train", "do_eval", "main"]

logger = logging.getLogger("detectron2")

# What bad input raises (each message names the file or key): the command line shows it as one
# line and keeps the traceback in log.txt. Anything else keeps its traceback on the console.
INPUT_ERRORS = (ValueError, LookupError, OSError, RuntimeError, EOFError, pickle.UnpicklingError)


def _run_info(cfg, args, **extra):
    config_file = getattr(args, "config_file", "")
    return {
        "config_file": config_file,
        "setting": os.path.splitext(os.path.basename(config_file))[0],
        "overrides": list(getattr(args, "opts", None) or []),
        "seed": cfg.train.get("seed"),
        "world_size": comm.get_world_size(),
        "device": cfg.train.device,
        **extra,
    }


def _check_init_checkpoint(cfg):
    """The fingerprint of the existing ``train.init_checkpoint``, or "random" if allowed."""
    path = cfg.train.get("init_checkpoint") or ""
    env = cfg.train.get("weights_env") or "DINOV3_WEIGHTS"
    if not path:
        if not cfg.train.get("allow_random_init", False):
            raise ValueError(
                "train.init_checkpoint is empty: the backbone would start from random weights, "
                f"and no result of such a run is comparable to the paper's. Set {env}="
                f"/path/to/weights (this config reads it), or pass train.init_checkpoint=PATH; "
                "to train from a random backbone on purpose, pass train.allow_random_init=True."
            )
        logger.warning(
            "train.init_checkpoint is empty and train.allow_random_init=True: the backbone "
            "starts from RANDOM weights; every metrics file records init_weights='random'."
        )
        return RANDOM_INIT
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"train.init_checkpoint={path!r}: no such file (set {env} or train.init_checkpoint "
            "to an existing weight file)."
        )
    return file_fingerprint(path)


def _check_eval_datasets(cfg):
    """Load the datasets to evaluate now: a missing or empty split fails before iteration 0."""
    for name in test_dataset_names(cfg):
        if name not in DatasetCatalog.list():
            raise KeyError(
                f"dataloader.test.dataset.names: {name!r} is not a registered dataset. "
                f"Registered: {', '.join(sorted(DatasetCatalog.list()))}."
            )
        if len(DatasetCatalog.get(name)) == 0:
            raise ValueError(
                f"dataloader.test.dataset.names: dataset {name!r} has no images; evaluation "
                "needs at least one (check its annotation file)."
            )


def _evaluated_checkpoint(checkpointer, iteration):
    saved = checkpointer.last_saved
    if saved and saved.get("iteration") == iteration and os.path.isfile(saved["path"]):
        return {
            "checkpoint": saved["path"],
            "checkpoint_iteration": iteration,
            "checkpoint_fingerprint": file_fingerprint(saved["path"]),
        }
    return {
        "checkpoint": None,
        "checkpoint_iteration": iteration,
        "checkpoint_note": f"the weights after iteration {iteration} were evaluated in memory; "
        "no checkpoint was saved at this iteration (make train.eval_period a multiple of "
        "train.checkpointer.period)",
    }


def do_train(cfg, args=None, resume=False, extra_hooks=()):
    """
    Train ``cfg.model`` as the config says, evaluating every ``train.eval_period`` iterations.

    Writes into ``train.output_dir``: periodic checkpoints (``train.checkpointer``: period,
    max_to_keep; ``train.checkpoint_trainable_only``), ``model_final.pth``, ``model_best.pth`` (by
    ``train.best_checkpointer``, default bbox/AP max), ``metrics.json``, TensorBoard events,
    ``log.txt`` and the evaluation results, each naming the initial weights. On SIGTERM or
    SIGINT it saves the current state and stops; ``--resume`` continues with the same
    iteration, LR, optimizer moments, loss scale, best metric, data order and random states.

    Args:
        cfg (DictConfig): the config (after :func:`setup`).
        args (argparse.Namespace or None): command line, recorded in the metrics files.
        resume (bool): continue from ``last_checkpoint`` in ``train.output_dir``; without one,
            start from ``train.init_checkpoint``.
        extra_hooks (list[HookBase]): hooks registered after the standard ones.

    Returns:
        dict: the last evaluation results (rank 0).
    """
    output_dir = cfg.train.output_dir
    resuming = resume and os.path.isfile(os.path.join(output_dir, "last_checkpoint"))
    init_weights = None if resuming else _check_init_checkpoint(cfg)
    if comm.is_main_process():
        removed = clean_stale_temps(output_dir)
        if removed:
            logger.info(f"Removed {len(removed)} temporary file(s) left by a killed run: {removed}")
    _check_eval_datasets(cfg)

    model = instantiate(cfg.model).to(cfg.train.device)
    trainable, total = count_parameters(model)
    logger.info(f"Model: {trainable:,} trainable of {total:,} parameters")
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)

    ddp = dict(cfg.train.get("ddp") or {})
    if not cfg.train.device.startswith("cuda"):
        ddp.setdefault("device_ids", None)  # CPU processes (gloo): no device to pin
    model = create_ddp_model(model, **ddp)
    amp = cfg.train.get("amp") or {}
    trainer = MixedPrecisionTrainer(
        model,
        train_loader,
        optimizer,
        amp_enabled=bool(amp.get("enabled", False)),
        amp_dtype=amp.get("dtype", "float16"),
        grad_scaler=amp.get("grad_scaler"),
        clip_grad=cfg.train.get("clip_grad"),
        device=cfg.train.device,
        max_nonfinite=cfg.train.get("max_nonfinite_steps", 10),
    )
    ckpt_cfg = dict(cfg.train.checkpointer)
    trainable_only = bool(ckpt_cfg.pop("trainable_only", False)) or bool(
        cfg.train.get("checkpoint_trainable_only", False)
    )
    checkpointer = TrainingCheckpointer(
        model,
        output_dir,
        trainable_only=trainable_only,
        base_candidates=[cfg.train.get("init_checkpoint") or ""],
        strict=resuming,
        max_to_keep=ckpt_cfg.pop("max_to_keep", None),
        trainer=trainer,
    )
    best = BestCheckpointer(checkpointer, **dict(cfg.train.get("best_checkpointer") or {}))
    main_process = comm.is_main_process()  # only rank 0 opens and writes metrics.json
    json_writer = (
        ProvenanceJSONWriter(os.path.join(output_dir, "metrics.json")) if main_process else None
    )
    last_results = {}
    datasets = test_dataset_names(cfg)

    def eval_fn():
        nonlocal last_results
        # the last finished iteration, as checkpoints count it (after_train sees max_iter)
        iteration = min(trainer.iter, cfg.train.max_iter - 1)
        evaluated = _evaluated_checkpoint(checkpointer, iteration)
        if main_process:
            json_writer.evaluations[trainer.storage.iter] = {
                k: evaluated[k] for k in ("checkpoint", "checkpoint_iteration")
            }
        info = _run_info(cfg, args, iteration=iteration, init_weights=init_weights, **evaluated)
        with rng_preserved():  # evaluation must not change what training draws next
            last_results = evaluate(cfg, model, run_info=info)
        if main_process:
            best.update(flatten_results_dict(last_results), iteration, datasets)
        return last_results

    def on_data_error(failures):
        # every rank is here (the trainer agreed on the failures), so collectives are safe
        done = trainer.iter - 1
        saved = "nothing trained since the start, no state to save"
        if done >= trainer.start_iter:
            save_state(trainer, checkpointer, f"model_{done:07d}", done)
            saved = f"the state after iteration {done} is saved (model_{done:07d}.pth)"
        comm.synchronize()  # no rank exits (and gets the others terminated) before the save
        for rank, message in failures:
            logger.error(
                f"Data loading failed on rank {rank} at iteration {done + 1}; {saved}. Fix or "
                f"remove the file it names, then --resume: {message}"
            )

    trainer.on_data_error = on_data_error
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            PeriodicCheckpointer(checkpointer, **ckpt_cfg),
            hooks.EvalHook(cfg.train.eval_period, eval_fn),
            best,
            hooks.PeriodicWriter(
                [
                    CommonMetricPrinter(cfg.train.max_iter),
                    json_writer,
                    TensorboardXWriter(output_dir),
                ],
                period=cfg.train.log_period,
            )
            if main_process
            else None,
            CheckpointOnSignal(checkpointer),
            *extra_hooks,
        ]
    )
    if resuming:
        path = checkpointer.get_checkpoint_file()
        extra = checkpointer.load(path)
        init_weights = extra.get("init_weights", "unrecorded")
        start_iter = trainer.iter + 1  # a checkpoint stores the iteration that had just finished
        logger.info(f"Resuming from {path} at iteration {start_iter}")
        if main_process:
            dropped = json_writer.drop_after(trainer.iter)
            if dropped:
                logger.info(
                    f"metrics.json: removed {dropped} record(s) the stopped run wrote after "
                    f"iteration {trainer.iter} (they are written again)."
                )
        if start_iter >= cfg.train.max_iter:
            logger.info("The run had already finished: only the final evaluation runs again.")
    else:
        start_iter = 0
        if cfg.train.init_checkpoint:
            try:
                checkpointer.load(cfg.train.init_checkpoint, checkpointables=[])
            except INPUT_ERRORS as e:
                raise ValueError(
                    f"train.init_checkpoint={cfg.train.init_checkpoint!r} is not usable as "
                    f"weights: {e}"
                ) from e
    checkpointer.extra_state["init_weights"] = init_weights
    if main_process:
        json_writer.provenance["init_weights"] = init_weights
    if trainable_only and not isinstance(init_weights, dict):
        raise ValueError(
            "train.checkpoint_trainable_only=True needs train.init_checkpoint (the frozen "
            "base the files refer to); this run starts from random weights."
        )
    trainer.train(start_iter, cfg.train.max_iter)
    return dict(last_results)


def do_eval(cfg, args=None):
    """
    Load ``train.init_checkpoint`` (any format the project's checkpointer reads), or
    ``args.weights`` over it as the base (an adapter), strictly: every tensor of the model must
    come from the file(s), with its shape. Then evaluate every dataset of ``dataloader.test``
    and return the results (rank 0); ``args`` is recorded in the metrics files.
    """
    weights = getattr(args, "weights", "") or ""
    checkpoint = weights or cfg.train.get("init_checkpoint")
    if not checkpoint:
        raise ValueError(
            "--eval-only needs the weights to evaluate: --weights FILE or "
            "train.init_checkpoint=PATH"
        )
    if not os.path.isfile(checkpoint):
        what = "--weights" if weights else "train.init_checkpoint"
        raise FileNotFoundError(f"{what}={checkpoint!r}: no such file.")
    _check_eval_datasets(cfg)
    model = instantiate(cfg.model).to(cfg.train.device)
    base = cfg.train.get("init_checkpoint") if weights else None
    env = cfg.train.get("weights_env") or "DINOV3_WEIGHTS"
    loader = TrainingCheckpointer(
        model,
        strict=True,
        base_checkpoint=base,
        base_candidates=[base or os.environ.get(env, "")],
    )
    extra = loader.load(checkpoint, checkpointables=[]) or {}
    iteration = extra.get("iteration")
    info = _run_info(
        cfg,
        args,
        iteration=iteration,
        checkpoint=checkpoint,
        checkpoint_iteration=iteration,
        checkpoint_fingerprint=file_fingerprint(checkpoint),
        init_weights=extra.get("init_weights", "unrecorded"),
    )
    return evaluate(cfg, model, run_info=info)


def _log_to_files_only(message, output_dir):
    """Log the current exception's traceback into the log files of ``output_dir`` only."""
    record = logger.makeRecord(
        logger.name, logging.ERROR, __file__, 0, message, None, sys.exc_info()
    )
    folder = os.path.abspath(output_dir) + os.sep
    files = []
    for handler in logger.handlers:
        name = getattr(getattr(handler, "stream", None), "name", None)
        if isinstance(name, str) and os.path.abspath(name).startswith(folder):
            handler.handle(record)
            handler.flush()
            files.append(name)
    return files


def main(args):
    """
    Entry point run in every process: load the config, set up, then train or evaluate.

    An error of :data:`INPUT_ERRORS` ends the process with ``SystemExit("error: <message>")``
    (exit status 1); its traceback goes to ``log.txt`` only. ``args`` come from
    :func:`build_argument_parser`.
    """
    cfg = load_config(args.config_file, args.opts)
    try:
        setup(cfg, args)
        if args.eval_only:
            return do_eval(cfg, args)
        return do_train(cfg, args, resume=args.resume)
    except INPUT_ERRORS as e:
        files = _log_to_files_only(f"Stopped: {e}", cfg.train.output_dir)
        rank = f"rank {comm.get_rank()}: " if comm.get_world_size() > 1 else ""
        where = f" (traceback in {files[0]})" if files else ""
        raise SystemExit(f"error: {rank}{e}{where}") from e
