"""Pictures of a run: loss and AP curves from metrics.json (predictions: see painter.py)."""

import json
import math
import os

from sar_lora_dino.utils.io import atomic_write

__all__ = ["read_metrics", "plot_training_curves"]

LOSS_KEYS = ("total_loss", "loss_cls", "loss_box_reg")
AP_KEYS = ("bbox/AP", "bbox/AP50")


def read_metrics(metrics_file):
    """
    Read detectron2's ``metrics.json`` (one JSON object per line) into records sorted by
    ``iteration``. A line cut short by a killed run is skipped, and when a resumed run wrote
    an iteration again the later record wins.
    """
    by_iter = {}
    with open(metrics_file) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "iteration" in record:
                by_iter.setdefault(record["iteration"], {}).update(record)
    return [by_iter[i] for i in sorted(by_iter)]


def plot_training_curves(metrics_file, output_file):
    """
    Plot the training losses and the validation AP/AP50 of a run's ``metrics.json`` against
    the iteration, as a PNG titled with the run's folder.

    Returns:
        str: ``output_file``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_file)
    curves = {}  # key -> (iterations, values), finite values only
    for key in LOSS_KEYS + AP_KEYS:
        points = [(r["iteration"], r.get(key)) for r in records]
        curves[key] = list(zip(*[(i, v) for i, v in points if v is not None and math.isfinite(v)]))
    fig, (ax_loss, ax_ap) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    for key in LOSS_KEYS:
        if curves[key]:
            ax_loss.plot(*curves[key], label=key, linewidth=2 if key == "total_loss" else 1)
    ax_loss.set(ylabel="training loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(loc="upper right")
    for key in AP_KEYS:
        if curves[key]:
            x, y = curves[key]
            ax_ap.plot(x, y, marker="o", label=f"val {key.split('/')[-1]}")
            ax_ap.annotate(
                f"{y[-1]:.1f}", (x[-1], y[-1]), textcoords="offset points", xytext=(4, 4)
            )
    if not any(curves[k] for k in AP_KEYS):
        evaluated = any(k in r for r in records for k in AP_KEYS)  # AP NaN: no detection at all
        text = "0 detections above the threshold" if evaluated else "no evaluation yet"
        ax_ap.text(0.5, 0.5, text, ha="center", transform=ax_ap.transAxes)
    ax_ap.set(ylabel="COCO bbox AP (%)", xlabel="iteration", ylim=(0, None))
    ax_ap.grid(alpha=0.3)
    ax_ap.legend(loc="lower right")
    fig.suptitle(os.path.dirname(os.path.abspath(metrics_file)))
    fig.tight_layout()
    atomic_write(output_file, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return output_file
