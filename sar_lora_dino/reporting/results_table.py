"""Collect the metrics files of several runs into a paper-style table (mean ± std over seeds)."""

import json
import math
import os
import statistics

from sar_lora_dino.engine.evaluation import BBOX_METRICS, METRICS_FILE
from sar_lora_dino.inference.runner import expand_inputs

__all__ = ["MixedWeightsError", "collect_runs", "summarize", "format_markdown", "format_tsv"]


class MixedWeightsError(ValueError):
    """Runs of one setting started from different initial weights (or some from random ones)."""


def weights_id(record):
    """
    Returns:
        str: ``"random"``, ``"sha256:<first 12 hex>"`` of the initial weights, or
        ``"unrecorded"`` (metrics files written before runs recorded their weights).
    """
    init = record.get("init_weights")
    if isinstance(init, dict) and init.get("sha256"):
        return f"sha256:{init['sha256'][:12]}"
    return "random" if init == "random" else "unrecorded"


# Overrides that change where or how a run is recorded, not what is trained.
_RUN_ONLY_PREFIXES = (
    "train.seed=",
    "train.output_dir=",
    "train.init_checkpoint=",  # the weights' fingerprint is compared instead
    "train.allow_random_init=",
    "train.weights_env=",
    "train.eval_period=",
    "train.log_period=",
    "train.checkpointer",
    "train.device=",
    "dataloader.test.",
    "dataloader.evaluator.",
    "dataloader.train.num_workers=",
)


def setting_name(record):
    """
    The name a run is grouped under: its config name plus any override that changes the model
    or the training (seed, paths and evaluation choices do not count).
    """
    name = record.get("setting") or "unknown"
    changes = [o for o in record.get("overrides", []) if not o.startswith(_RUN_ONLY_PREFIXES)]
    return name + (" [" + " ".join(changes) + "]" if changes else "")


def collect_runs(paths, group_by="setting"):
    """
    Read every ``coco_metrics.json`` of ``paths`` (run folders searched recursively, metrics
    files or globs), once each, in sorted order.

    Args:
        group_by (str): "setting" (config name + training overrides, from the file) or "dir"
            (the name of the folder above the seed folder: ``.../SETTING/SEED/inference/...``).

    Returns:
        list[dict]: one record per file, with "setting", "split", "file" and the file's content.
    """
    files, unmatched = expand_inputs(paths, in_folders=lambda name: name == METRICS_FILE)
    if unmatched:
        raise FileNotFoundError(
            f"no such run folder or metrics file, or no {METRICS_FILE} in it: {unmatched[0]}"
        )
    records = []
    for path in sorted({os.path.abspath(f) for f in files}):
        with open(path) as f:
            try:
                record = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not valid JSON: {e}") from e
        if "bbox" not in record:
            raise ValueError(f"{path} has no 'bbox' metrics; is it a {METRICS_FILE}?")
        record["file"] = path
        if group_by == "dir":
            run_dir = path.split(os.sep + "inference" + os.sep)[0]
            record["setting"] = os.path.basename(os.path.dirname(run_dir))
        elif group_by == "setting":
            record["setting"] = setting_name(record)
        else:
            raise ValueError(f"group_by must be 'setting' or 'dir', got {group_by!r}")
        record.setdefault("split", record.get("dataset", "?").rsplit("_", 1)[-1])
        record["weights"] = weights_id(record)
        records.append(record)
    return records


def _mean_std(values):
    """Mean and sample standard deviation over seeds of the finite values (None if too few)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    mean = statistics.mean(values) if values else None
    return mean, statistics.stdev(values) if len(values) > 1 else None


def _check_weights(records, separate_weights):
    by_setting = {}
    for r in records:
        by_setting.setdefault(r["setting"], {}).setdefault(r["weights"], []).append(r)
    for setting, groups in by_setting.items():
        if len(groups) > 1 and not separate_weights:
            listing = "; ".join(
                f"{w}: " + ", ".join(os.path.dirname(r["file"]) for r in runs)
                for w, runs in groups.items()
            )
            raise MixedWeightsError(
                f"Setting {setting!r} has runs from {len(groups)} different initial weights "
                f"({', '.join(groups)}); their mean ± std would mix them. Runs: {listing}. "
                "Remove the wrong runs, or pass --separate-weights for one row per weights."
            )
        for weights, runs in groups.items():
            if len(groups) > 1 or weights == "random":
                for r in runs:
                    r["setting"] = f"{setting} [init {weights}]"


def summarize(records, separate_weights=False):
    """
    Group records by (setting, initial weights, split) and average each metric over the runs
    (seeds). A setting whose runs started from different weights (random vs pretrained, or
    two different files) is an error naming the runs, unless ``separate_weights``: then each
    weights gets its own row. Random-init rows are labelled ``[init random]``.

    Args:
        records (list[dict]): from :func:`collect_runs`.

    Returns:
        dict: ``{(setting, split): {"n": int, "seeds": list, "trainable_params": int,
        metric: (mean, std)}}`` with metrics as fractions (COCO AP / 100), in first-seen order.
    """
    records = [dict(r) for r in records]
    _check_weights(records, separate_weights)
    groups = {}
    for r in records:
        groups.setdefault((r["setting"], r["split"]), []).append(r)
    table = {}
    for key, runs in groups.items():
        row = {"n": len(runs), "seeds": [r.get("seed") for r in runs]}
        params = {r.get("trainable_params") for r in runs}
        row["trainable_params"] = params.pop() if len(params) == 1 else None
        for metric in BBOX_METRICS:
            values = [r["bbox"].get(metric) for r in runs]
            row[metric] = _mean_std([v / 100.0 for v in values if v is not None])
        table[key] = row
    return table


def _cell(row, metric):
    """A row's mean ± std of ``metric`` over its seeds; a dash when there is none."""
    mean, std = row[metric] if row else (None, None)
    if mean is None:
        return "—"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f} ({row['n']} seeds)"


def format_markdown(table):
    """
    Returns:
        str: a Markdown table, one row per setting, an AP column per split (mean ± std over
        seeds), AP50 of the first split, and the trainable parameters.
    """
    splits = list(dict.fromkeys(split for _, split in table))
    settings = list(dict.fromkeys(setting for setting, _ in table))
    header = ["Setting"] + [f"{s} mAP" for s in splits] + [f"{splits[0]} AP50", "trainable params"]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for setting in settings:
        rows = [table.get((setting, split)) for split in splits]
        params = next((r["trainable_params"] for r in rows if r and r["trainable_params"]), None)
        cells = [setting] + [_cell(r, "AP") for r in rows] + [_cell(rows[0], "AP50")]
        cells.append(f"{params / 1e6:.3f}M" if params else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_tsv(table):
    """
    Returns:
        str: tab-separated values, one line per (setting, split), every metric's mean and std
        as fractions.
    """
    header = ["setting", "split", "n", "seeds", "trainable_params"]
    lines = [header + [f"{m}_{stat}" for m in BBOX_METRICS for stat in ("mean", "std")]]
    for (setting, split), row in table.items():
        params = row["trainable_params"]
        cells = [setting, split, str(row["n"]), ",".join(str(s) for s in row["seeds"])]
        cells.append("" if params is None else str(params))
        cells += ["" if v is None else f"{v:.4f}" for m in BBOX_METRICS for v in row[m]]
        lines.append(cells)
    return "".join("\t".join(cells) + "\n" for cells in lines)
