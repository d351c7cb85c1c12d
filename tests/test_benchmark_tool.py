"""tools/benchmark.py: the README section it generates, and its saved-tensor meter."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools"))
import benchmark  # noqa: E402
import benchmark_parts  # noqa: E402

REPORT = {
    "machine": {
        "date_utc": "2026-01-01 00:00",
        "cpu": "Test CPU",
        "usable_cpus": 2,
        "logical_cpus": 2,
        "torch_threads": 2,
        "load_average_1_5_15": [1.0, 1.0, 1.0],
        "python": "3.11",
        "torch": "2.x",
    },  # fmt: skip
    "settings": {
        "device": "cpu",
        "size": 64,
        "batch": 1,
        "steps": 1,
        "repeats": 2,
        "amp": "none",
        "release": "before",
    },  # fmt: skip
    "train": {
        "memory": "peak_rss_mib",
        "variants": {
            "lora": {
                "trainable_params": 11_569_000,
                "seconds_per_step": [1.0, 1.2],
                "peak_mib": [900, 950],
                "saved_activations_mib": 50,
                "time_vs_full": 0.5,
                "peak_vs_full": 0.45,
            },  # fmt: skip
        },
    },
}


def test_readme_section_is_replaced_and_the_rest_kept(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{benchmark.BEGIN}\nold table\n{benchmark.END}\noutro\n")
    benchmark.rewrite_readme(str(readme), benchmark.markdown(REPORT))
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{benchmark.END}\noutro\n")
    assert "old table" not in text
    assert "| lora | 11.569M | 1.00 / 1.20 | 900 / 950 | 50 | 0.5 | 0.45 |" in text
    assert "Test CPU (2 usable of 2 logical CPUs, 2 torch threads" in text


def test_readme_without_markers_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="needs exactly one"):
        benchmark.rewrite_readme(str(readme), "table\n")
    assert readme.read_text() == "no markers\n"


def test_saved_tensor_meter_counts_activations_not_parameters():
    lin = torch.nn.Linear(64, 64)
    meter = benchmark_parts.SavedTensorMeter(lin)
    x = torch.randn(128, 64, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, lambda t: t):
        y = torch.relu(lin(x))  # saves x (for the weight grad) and relu's output
    y.sum().backward()
    assert meter.mib() == pytest.approx(2 * 128 * 64 * 4 / 2**20)
