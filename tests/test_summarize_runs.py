"""tools/summarize_runs.py: mean ± std over seeds of generated metrics files, Markdown and TSV."""

import json
import os
import runpy
import subprocess
import sys

import pytest
from engine_helpers import REPO

from sar_lora_dino.reporting.results_table import (
    MixedWeightsError,
    collect_runs,
    format_markdown,
    summarize,
)

PRETRAINED = {"path": "/w/dinov3.pth", "size": 3, "sha256": "ab" * 32, "scope": "whole"}
OTHER = {"path": "/w/other.pth", "size": 3, "sha256": "cd" * 32, "scope": "whole"}


def _write(root, setting, seed, split, ap, params, overrides=(), init=PRETRAINED):
    folder = os.path.join(root, setting, f"seed{seed}", "inference", f"sardet100k_{split}")
    os.makedirs(folder)
    record = {
        "dataset": f"sardet100k_{split}",
        "split": split,
        "bbox": {"AP": ap, "AP50": ap + 20, "AP75": ap - 5, "APs": 1.0, "APm": None, "APl": 2.0},
        "per_class_AP": {"ship": ap},
        "trainable_params": params,
        "setting": setting,
        "seed": seed,
        "overrides": [f"train.seed={seed}", f"train.output_dir=out/{seed}", *overrides],
        "init_weights": init,
    }
    with open(os.path.join(folder, "coco_metrics.json"), "w") as f:
        json.dump(record, f)


@pytest.fixture
def runs(tmp_path):
    root = str(tmp_path / "runs")
    for seed, ap in enumerate([41.3, 42.5, 42.0]):
        _write(root, "linear", seed, "val", ap, 9402970)
    for seed, ap in enumerate([49.5, 53.0, 54.4]):
        _write(root, "lora_r16_fc1fc2", seed, "val", ap, 11568730)
    _write(root, "lora_r16_fc1fc2", 0, "test", 51.3, 11568730)
    return root


def test_mean_and_sample_std_over_seeds(runs):
    table = summarize(collect_runs([runs]))
    row = table[("linear", "val")]
    assert row["n"] == 3 and row["seeds"] == [0, 1, 2]
    assert row["AP"][0] == pytest.approx(0.41933333, abs=1e-6)
    assert row["AP"][1] == pytest.approx(0.0060277, abs=1e-6)  # sample std (n - 1)
    assert row["APm"] == (None, None)
    assert table[("lora_r16_fc1fc2", "test")]["AP"] == (pytest.approx(0.513), None)


def test_markdown_has_a_row_per_setting_and_a_column_per_split(runs):
    md = format_markdown(summarize(collect_runs([runs])))
    lines = md.strip().splitlines()
    assert lines[0] == "| Setting | val mAP | test mAP | val AP50 | trainable params |"
    assert "| linear | 0.419 ± 0.006 (3 seeds) | — |" in md
    assert "| lora_r16_fc1fc2 | 0.523 ± 0.025 (3 seeds) | 0.513 |" in md
    assert "9.403M" in md and "11.569M" in md


def test_training_overrides_make_separate_settings(tmp_path):
    root = str(tmp_path)
    _write(root, "cfg", 0, "val", 40.0, 10)
    _write(root, "cfg", 1, "val", 42.0, 10)
    os.rename(os.path.join(root, "cfg"), os.path.join(root, "a"))
    _write(root, "cfg", 0, "val", 30.0, 10, ["model.backbone.bottom_up.lora_r=8"])
    settings = {k[0] for k in summarize(collect_runs([root]))}
    assert settings == {"cfg", "cfg [model.backbone.bottom_up.lora_r=8]"}
    by_dir = {k[0] for k in summarize(collect_runs([root], group_by="dir"))}
    assert by_dir == {"a", "cfg"}


def test_command_line_writes_markdown_and_tsv(runs, tmp_path):
    out = str(tmp_path / "table")
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "summarize_runs.py"), runs, "--out", out],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0.419 ± 0.006 (3 seeds)" in proc.stdout
    with open(out + ".tsv") as f:
        header, *rows = f.read().strip().splitlines()
    assert header.split("\t")[:7] == [
        "setting",
        "split",
        "n",
        "seeds",
        "trainable_params",
        "AP_mean",
        "AP_std",
    ]
    assert rows[0].split("\t")[:7] == ["linear", "val", "3", "0,1,2", "9402970", "0.4193", "0.0060"]
    assert os.path.isfile(out + ".md")


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        collect_runs([str(tmp_path / "nope")])


@pytest.mark.parametrize("odd", ["random", OTHER])
def test_runs_of_different_initial_weights_are_never_averaged(tmp_path, odd):
    root = str(tmp_path)
    _write(root, "lora", 0, "val", 52.0, 10)
    _write(root, "lora", 1, "val", 53.0, 10)
    os.rename(os.path.join(root, "lora"), os.path.join(root, "good"))
    _write(root, "lora", 2, "val", 20.0, 10, init=odd)
    records = collect_runs([root])
    with pytest.raises(MixedWeightsError, match=r"'lora' has runs from 2 different") as err:
        summarize(records)
    assert os.path.join(root, "lora", "seed2") in str(err.value)  # the odd run is named
    assert os.path.join(root, "good", "seed0") in str(err.value)
    table = summarize(records, separate_weights=True)
    odd_id = "random" if odd == "random" else "sha256:" + "cd" * 6
    assert table[(f"lora [init {odd_id}]", "val")]["n"] == 1
    assert table[("lora [init sha256:" + "ab" * 6 + "]", "val")]["AP"][0] == pytest.approx(0.525)
    main = runpy.run_path(os.path.join(REPO, "tools", "summarize_runs.py"))["main"]
    with pytest.raises(SystemExit, match="different initial weights"):
        main([root])


def test_random_init_rows_say_so(tmp_path):
    _write(str(tmp_path), "demo", 0, "val", 10.0, 10, init="random")
    assert list(summarize(collect_runs([str(tmp_path)]))) == [("demo [init random]", "val")]
