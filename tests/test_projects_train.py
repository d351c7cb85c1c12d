"""The projects' detectors train on the LoRA backbone, filter their data and run through the CLI."""

import json
import os
import subprocess
import sys

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from sar_lora_dino.data import make_synthetic_sardet, register_sardet100k
from sar_lora_dino.engine import count_parameters
from sar_lora_dino.modeling import LoRALinear

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {
    "faster_rcnn": os.path.join(REPO, "tests", "configs", "tiny_projects_faster_rcnn.py"),
    "fcos": os.path.join(REPO, "tests", "configs", "tiny_projects_fcos.py"),
}
PREFIX = "projectstest"


def _record(boxes, classes, height=96, width=128):
    inst = Instances((height, width))
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.long)
    image = torch.rand(3, height, width) * 255
    return {"image": image, "instances": inst, "height": height, "width": width}


def _train_steps(cfg, batch, steps=3):
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    model.train()
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = []
    with EventStorage():
        for _ in range(steps):
            loss_dict = model(batch)
            loss = sum(loss_dict.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    return model, losses, changed


@pytest.mark.parametrize("detector", sorted(TINY))
def test_a_few_steps_train_lora_fpn_and_heads_but_not_the_frozen_backbone(detector):
    cfg = LazyConfig.load(TINY[detector])
    batch = [
        _record([[10, 10, 40, 30], [50, 20, 120, 90]], [1, 3]),
        _record([[60, 40, 90, 70]], [0]),
    ]
    model, losses, changed = _train_steps(cfg, batch, steps=2)
    assert all(torch.isfinite(torch.tensor(losses)))
    prefix = "backbone.bottom_up."
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    lora = {
        f"{name}.{p}"
        for name, m in model.named_modules()
        if isinstance(m, LoRALinear)
        for p, _ in m.named_parameters()
        if p.startswith("lora_")
    }
    assert lora and {n for n in trainable if n.startswith(prefix)} == lora
    assert changed <= trainable
    # B starts at zero, so only a gradient step can move it.
    assert {n for n in lora if "lora_B" in n} <= changed
    heads = {n.split(".")[0] for n in changed if not n.startswith("backbone.")}
    expected = {"proposal_generator", "roi_heads"} if detector == "faster_rcnn" else {"head"}
    assert heads == expected
    assert any(n.startswith("backbone.") and not n.startswith(prefix) for n in changed)  # FPN


def test_faster_rcnn_trains_on_an_image_without_boxes():
    # The SARDet-100K recipe keeps images whose boxes were all skipped as all-negative samples.
    cfg = LazyConfig.load(TINY["faster_rcnn"])
    batch = [_record([], []), _record([], [])]
    _, losses, changed = _train_steps(cfg, batch, steps=1)
    assert all(torch.isfinite(torch.tensor(losses))) and changed


def test_stock_fcos_cannot_label_an_image_without_boxes():
    cfg = LazyConfig.load(TINY["fcos"])
    try:
        _train_steps(cfg, [_record([], []), _record([[10, 10, 40, 30]], [1])], steps=1)
    except (IndexError, RuntimeError) as e:
        assert "size" in str(e)  # "Expected reduction dim 1 to have non-zero size"
    else:
        pytest.skip("this detectron2's FCOS labels empty images; its config need not drop them")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """8 train / 4 val synthetic images; every box of one train image is marked ``ignore``."""
    root = str(tmp_path_factory.mktemp("projects") / "root")
    make_synthetic_sardet(root, num_train=8, num_val=4, num_test=0, sizes=(128,), seed=0)
    path = os.path.join(root, "Annotations", "train.json")
    with open(path) as f:
        data = json.load(f)
    image_id = data["annotations"][0]["image_id"]
    for ann in data["annotations"]:
        if ann["image_id"] == image_id:
            ann["ignore"] = 1
    with open(path, "w") as f:
        json.dump(data, f)
    register_sardet100k(root=root, prefix=PREFIX, splits=("train", "val"))
    return root


@pytest.mark.parametrize("detector,kept", [("faster_rcnn", 8), ("fcos", 7)])
def test_training_set_keeps_all_negative_images_only_for_faster_rcnn(data_root, detector, kept):
    cfg = LazyConfig.load(TINY[detector])
    cfg.dataloader.train.dataset.names = f"{PREFIX}_train"
    with open(os.path.join(data_root, "Annotations", "train.json")) as f:
        assert len({a["image_id"] for a in json.load(f)["annotations"]}) == 8
    records = instantiate(cfg.dataloader.train.dataset)
    assert len(records) == kept
    if detector == "fcos":
        assert all(any(a["iscrowd"] == 0 for a in r["annotations"]) for r in records)


@pytest.mark.parametrize("detector", sorted(TINY))
def test_cli_trains_and_evaluates_a_project_config(data_root, detector, tmp_path):
    out = str(tmp_path / "run")
    env = dict(os.environ, SARDET100K_ROOT=data_root, PYTHONPATH=REPO, DINOV3_WEIGHTS="")
    cmd = [
        sys.executable,
        os.path.join(REPO, "tools", "lazyconfig_train_net.py"),
        "--config-file",
        TINY[detector],
        f"train.output_dir={out}",
        "train.max_iter=1",  # one step, then the final evaluation
        "train.eval_period=1",
        "train.checkpointer.period=1",
    ]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
    with open(os.path.join(out, "inference", "sardet100k_val", "coco_metrics.json")) as f:
        metrics = json.load(f)
    assert set(metrics["bbox"]) >= {"AP", "AP50", "AP75"}
    assert metrics["bbox"]["AP"] is not None and 0.0 <= metrics["bbox"]["AP"] <= 100.0
    assert sorted(metrics["per_class_AP"]) == sorted(
        ["ship", "aircraft", "car", "tank", "bridge", "harbor"]
    )
    torch.manual_seed(0)
    trainable, total = count_parameters(instantiate(LazyConfig.load(TINY[detector]).model))
    assert (metrics["trainable_params"], metrics["total_params"]) == (trainable, total)
