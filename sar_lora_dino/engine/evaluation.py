"""COCO evaluation of every dataset in ``dataloader.test``, printed and written as JSON."""

import copy
import json
import logging
import math
import os

from detectron2.config import instantiate
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from torch.nn.parallel import DistributedDataParallel

from sar_lora_dino.utils.io import atomic_write

__all__ = ["evaluate", "test_dataset_names", "count_parameters", "METRICS_FILE"]

logger = logging.getLogger("detectron2")

METRICS_FILE = "coco_metrics.json"
BBOX_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def test_dataset_names(cfg):
    """The names in ``dataloader.test.dataset.names`` (a name or a list), as a list."""
    names = cfg.dataloader.test.dataset.names
    return [names] if isinstance(names, str) else list(names)


def count_parameters(model):
    """(trainable, total) parameter counts of ``model`` (DDP unwrapped)."""
    if isinstance(model, DistributedDataParallel):
        model = model.module
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _evaluator_cfg(cfg, name, num_datasets):
    evaluator = copy.deepcopy(cfg.dataloader.evaluator)
    if "dataset_name" in evaluator:  # the ground truth must be the dataset being predicted
        evaluator.dataset_name = name
    output_dir = evaluator.get("output_dir")
    if not output_dir:
        output_dir = os.path.join(cfg.train.output_dir, "inference", name)
    elif num_datasets > 1:
        output_dir = os.path.join(output_dir, name)
    evaluator.output_dir = output_dir
    if "use_fast_impl" in evaluator or "COCOEvaluator" in str(evaluator.get("_target_", "")):
        from sar_lora_dino.data.evaluator import ensure_fast_coco_eval

        if not ensure_fast_coco_eval():  # no detectron2 C++ ops and no faster-coco-eval
            evaluator.use_fast_impl = False
    return evaluator, output_dir


def _report(name, results, output_dir, run_info, model, score_thresh=None):
    bbox = results.get("bbox", {})
    main = {k: bbox[k] for k in BBOX_METRICS if k in bbox}
    per_class = {k[len("AP-") :]: v for k, v in bbox.items() if k.startswith("AP-")}
    note = None
    # no prediction at all: detectron2 reports every metric as NaN and no per-class AP
    if main and not per_class and not any(math.isfinite(float(v)) for v in main.values()):
        note = "0 detections above the threshold" + (
            f" (model.test_score_thresh={score_thresh})" if score_thresh is not None else ""
        )
        logger.warning(f"{name}: {note}; AP cannot be computed.")
    else:
        print_csv_format(results)
        logger.info(
            f"bbox AP on {name}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in main.items())
            + " (percent)"
        )
    trainable, total = count_parameters(model)
    record = {
        "dataset": name,
        "split": name.rsplit("_", 1)[-1],
        "units": "COCO bbox AP in percent (0-100); null where COCO cannot compute it",
        "bbox": {k: _finite_or_none(v) for k, v in main.items()},
        "per_class_AP": {k: _finite_or_none(v) for k, v in per_class.items()},
        "trainable_params": trainable,
        "total_params": total,
        "predictions": os.path.join(output_dir, "coco_instances_results.json"),
        **(run_info or {}),
    }
    if note:
        record["note"] = note
    path = os.path.join(output_dir, METRICS_FILE)
    atomic_write(path, lambda f: json.dump(record, f, indent=2), mode="w")
    logger.info(f"Wrote {path}")


def evaluate(cfg, model, run_info=None):
    """
    Run inference and COCO evaluation on each dataset named in ``dataloader.test.dataset.names``.

    The evaluator is made to follow the loader: its ``dataset_name`` is set to the dataset being
    evaluated, its ``output_dir`` defaults to ``{train.output_dir}/inference/{dataset}``, where
    the predictions (``coco_instances_results.json``) and the metrics (``coco_metrics.json``:
    AP, AP50, AP75, APs, APm, APl, per-class AP, parameter counts and ``run_info``) are written.

    Args:
        cfg: the LazyConfig (``dataloader.test``, ``dataloader.evaluator``, ``train.output_dir``).
        model (nn.Module): the model, already on its device (may be DDP-wrapped).
        run_info (dict): JSON-able facts about the run stored in the metrics file.

    Returns:
        dict: ``{"bbox": {...}}`` for one dataset, ``{dataset: {"bbox": {...}}}`` for several;
        empty on ranks other than 0.
    """
    names = test_dataset_names(cfg)
    all_results = {}
    for name in names:
        loader_cfg = copy.deepcopy(cfg.dataloader.test)
        loader_cfg.dataset.names = name
        evaluator_cfg, output_dir = _evaluator_cfg(cfg, name, len(names))
        logger.info(f"Evaluating {name}; predictions and metrics go to {output_dir}")
        results = inference_on_dataset(model, instantiate(loader_cfg), instantiate(evaluator_cfg))
        if comm.is_main_process():
            thresh = cfg.model.get("test_score_thresh") if "model" in cfg else None
            _report(name, results, output_dir, run_info, model, thresh)
        all_results[name] = results
    comm.synchronize()
    if len(names) == 1:
        return all_results[names[0]]
    return all_results
