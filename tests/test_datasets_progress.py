"""datasets/prepare_sardet100k.py: progress bars only when stderr is a terminal."""

import io
import json
import os
import runpy
import sys

import pytest

from sar_lora_dino.data import make_synthetic_sardet

_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "datasets", "prepare_sardet100k.py")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _main():
    return runpy.run_path(_SCRIPT)["main"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("progress") / "SARDet_100K")
    make_synthetic_sardet(root, num_train=4, num_val=2, num_test=2, seed=3)
    return root


@pytest.mark.parametrize("terminal", [False, True])
def test_bars_only_on_a_terminal(root, tmp_path, monkeypatch, terminal):
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    report = str(tmp_path / "report.json")
    args = [f"--root={root}", "--no-expected-counts", "--workers=1", f"--json={report}"]
    assert _main()(args) == 0
    subset = ["--subset=2", f"--root={root}", f"--out={tmp_path / 'subset'}"]
    assert _main()(subset) == 0
    shown = stderr.getvalue()
    assert ("train: reading images" in shown) == terminal
    assert ("train: copying" in shown) == terminal
    assert json.load(open(report))["problems"] == []
