"""Merged, adapter and peft exports of a model trained a few steps from a base backbone file."""

import argparse
import copy
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import timm
import torch
from detectron2.config import instantiate
from engine_helpers import REPO, TINY_CONFIG, make_tiny_root, tiny_cfg
from safetensors import safe_open

from sar_lora_dino.checkpoint import MultiFormatCheckpointer, read_adapter, save_adapter
from sar_lora_dino.checkpoint.checkpointer import find_convnext_backbone
from sar_lora_dino.engine import ConfigOverrideError, do_eval, do_train, evaluate, load_config
from sar_lora_dino.export import (
    config_to_yaml,
    export_adapter,
    export_merged,
    export_peft,
    load_trained_model,
)
from sar_lora_dino.export.command import main as export_main
from sar_lora_dino.modeling import LoRALinear, lora_state_dict_keys

PREFIX = "exporttest"


def _write_base(path, seed):
    """A timm-layout backbone file for the tiny config, layer scale 1 so that LoRA matters."""
    cfg = load_config(TINY_CONFIG)
    torch.manual_seed(seed)
    _, backbone = find_convnext_backbone(instantiate(cfg.model))
    state = {}
    adapters = lora_state_dict_keys(backbone)  # a released backbone file has none
    for k, v in backbone.state_dict().items():
        if k in adapters:
            continue
        state[k] = torch.ones_like(v) if k.endswith(".gamma") else v + 0.05 * torch.randn_like(v)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    make_tiny_root(str(tmp / "root"), PREFIX)
    base = _write_base(str(tmp / "base.pth"), seed=1)
    out = str(tmp / "run")
    # 3 steps (lr 1e-3) move every lora_B off zero; one evaluation writes model_best.pth
    extra = [f"train.init_checkpoint={base}", "train.max_iter=3", "train.eval_period=3"]
    cfg, args = tiny_cfg(out, PREFIX, extra=extra)
    do_train(cfg, args)
    return {"dir": out, "base": base, "tmp": tmp}


@pytest.fixture(scope="module")
def trained(run):
    cfg, model = load_trained_model(
        os.path.join(run["dir"], "config.yaml"), os.path.join(run["dir"], "model_best.pth")
    )
    return cfg, model


def _val_images(n=2, sizes=((96, 128), (101, 131))):
    g = torch.Generator().manual_seed(0)
    return [
        {"image": torch.randint(0, 256, (3, *sizes[i % len(sizes)]), generator=g).float()}
        for i in range(n)
    ]


def _predict(model, inputs):
    with torch.no_grad():
        return [o["instances"] for o in model.eval()(inputs)]


def _lora_layers(model):
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def test_training_changed_the_adapters(trained):
    _, model = trained
    layers = _lora_layers(model)
    assert len(layers) == 8 and all(torch.count_nonzero(m.lora_B) > 0 for m in layers)


def test_merged_export_predicts_as_the_lora_model(run, trained, tmp_path):
    cfg, model = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config_path, plain = export_merged(cfg, model, str(tmp_path / "merged.pth"))
    assert not any(m.merged for m in _lora_layers(model))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # what a user loads: the written config and checkpoint, no LoRA module left
    merged_cfg, merged = load_trained_model(config_path, str(tmp_path / "merged.pth"))
    assert not _lora_layers(merged) and merged_cfg.model.backbone.bottom_up.finetune == "frozen"
    assert merged_cfg.train.init_checkpoint == str(tmp_path / "merged.pth")
    inputs = _val_images()
    for a, b in zip(_predict(model, inputs), _predict(merged, inputs)):
        assert len(a) == len(b) > 0
        assert torch.equal(a.pred_classes, b.pred_classes)
        torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor, rtol=0, atol=1e-3)
        torch.testing.assert_close(a.scores, b.scores, rtol=0, atol=1e-5)
    # the synthetic val split: same AP, same detections
    results = []
    for name, c, m in (("lora", cfg, model), ("merged", merged_cfg, merged)):
        c.train.output_dir = str(tmp_path / name)
        ap = evaluate(c, m)["bbox"]["AP"]
        with open(
            tmp_path / name / "inference" / f"{PREFIX}_val" / "coco_instances_results.json"
        ) as f:
            results.append((ap, json.load(f)))
    (ap_lora, dets_lora), (ap_merged, dets_merged) = results
    assert ap_lora == pytest.approx(ap_merged, abs=1e-9)
    assert len(dets_lora) == len(dets_merged) > 0
    for a, b in zip(dets_lora, dets_merged):
        assert (a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
        assert max(abs(x - y) for x, y in zip(a["bbox"], b["bbox"])) < 1e-3


def test_adapter_holds_only_what_training_changed(run, trained, tmp_path):
    cfg, model = trained
    path = str(tmp_path / "adapter.safetensors")
    export_adapter(cfg, model, path)
    tensors, meta = read_adapter(path)
    prefix, backbone = find_convnext_backbone(model)
    frozen = {prefix + n for n, p in backbone.named_parameters() if not p.requires_grad}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable <= set(tensors) and not frozen & set(tensors)
    assert set(tensors) == trainable  # pixel_mean/std are not persistent buffers
    assert meta["lora"]["r"] == [16] and meta["lora"]["targets"] == ["mlp.fc1", "mlp.fc2"]
    assert meta["base"]["sha256"] and meta["base"]["path"] == run["base"]
    assert "lora_targets" in meta["config"]
    full = os.path.getsize(os.path.join(run["dir"], "model_best.pth"))
    assert os.path.getsize(path) < full


def test_adapter_on_its_base_rebuilds_the_trained_model(run, trained, tmp_path):
    cfg, model = trained
    path = str(tmp_path / "adapter.safetensors")
    export_adapter(cfg, model, path)
    expected = model.state_dict()
    for base in (run["base"], None):  # given, or the base recorded in the adapter
        torch.manual_seed(123)
        fresh = instantiate(cfg.model).eval()
        MultiFormatCheckpointer(fresh, base_checkpoint=base).load(path)
        got = fresh.state_dict()
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected)
    # the same through --eval-only --weights of the training tool
    eval_cfg, _ = tiny_cfg(str(tmp_path / "eval"), PREFIX, [f"train.init_checkpoint={run['base']}"])
    args = argparse.Namespace(config_file=TINY_CONFIG, opts=[], weights=path)
    evaluated = do_eval(eval_cfg, args)["bbox"]["AP"]
    cfg.train.output_dir = str(tmp_path / "ref")
    assert evaluated == pytest.approx(evaluate(cfg, model)["bbox"]["AP"], abs=1e-9)


def _load(cfg, path, base, *overrides):
    from sar_lora_dino.engine import apply_overrides

    model = instantiate(apply_overrides(copy.deepcopy(cfg), list(overrides)).model)
    MultiFormatCheckpointer(model, base_checkpoint=base).load(path)


def test_wrong_base_rank_or_targets_fail_naming_which(run, trained, tmp_path):
    cfg, model = trained
    path = str(tmp_path / "adapter.safetensors")
    export_adapter(cfg, model, path)
    other = _write_base(str(tmp_path / "other_base.pth"), seed=2)
    with pytest.raises(ValueError, match=r"wrong base .* trained on .*base\.pth .*other_base\.pth"):
        _load(cfg, path, other)
    with pytest.raises(ValueError, match=r"wrong LoRA rank: adapter r=\[16\], model r=\[8\]"):
        _load(cfg, path, run["base"], "model.backbone.bottom_up.lora_r=8")
    with pytest.raises(ValueError, match=r"wrong LoRA target set: adapter targets \['mlp.fc1', "):
        _load(cfg, path, run["base"], "model.backbone.bottom_up.lora_targets=[mlp.fc2]")
    with pytest.raises(ValueError, match=r"wrong fine-tuning mode.*'lora'.*'frozen'"):
        _load(cfg, path, run["base"], "model.backbone.bottom_up.finetune=frozen")


def test_adapter_of_a_random_backbone_carries_it(run, trained, tmp_path):
    cfg, model = trained
    path = str(tmp_path / "random.safetensors")
    save_adapter(model, path, config_to_yaml(cfg), base_checkpoint=None)
    tensors, meta = read_adapter(path)
    assert meta["base"] == "random" and meta["includes_base"]
    assert set(tensors) == set(model.state_dict())
    fresh = instantiate(cfg.model)
    MultiFormatCheckpointer(fresh).load(path)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in fresh.state_dict().items())
    with pytest.raises(ValueError, match="wrong base .*random backbone"):
        MultiFormatCheckpointer(instantiate(cfg.model), base_checkpoint=run["base"]).load(path)


def test_peft_format_keys_and_shapes(trained, tmp_path):
    cfg, model = trained
    out = export_peft(model, str(tmp_path / "peft"))
    with open(os.path.join(out, "adapter_config.json")) as f:
        config = json.load(f)
    assert config["peft_type"] == "LORA" and config["r"] == 16 and config["lora_alpha"] == 32
    assert config["target_modules"] == ["mlp.fc1", "mlp.fc2"] and config["bias"] == "none"
    bottom_up = cfg.model.backbone.bottom_up
    timm_model = timm.create_model(
        bottom_up.arch, pretrained=False, depths=list(bottom_up.depths), dims=list(bottom_up.dims)
    )
    modules = dict(timm_model.named_modules())
    with safe_open(os.path.join(out, "adapter_model.safetensors"), framework="pt") as f:
        keys = sorted(f.keys())
        assert len(keys) == 16
        assert "base_model.model.stages.0.blocks.0.mlp.fc1.lora_A.weight" in keys
        for key in keys:
            assert key.startswith("base_model.model.") and key.endswith(
                (".lora_A.weight", ".lora_B.weight")
            )
            path, kind = key[len("base_model.model.") :].rsplit(".", 2)[0], key.split(".")[-2]
            linear = modules[path]  # a real module path of the timm model
            assert isinstance(linear, torch.nn.Linear)
            shape = (16, linear.in_features) if kind == "lora_A" else (linear.out_features, 16)
            assert tuple(f.get_tensor(key).shape) == shape
    with pytest.raises(FileExistsError):
        export_peft(model, out)


def test_peft_refuses_a_model_that_also_trains_stages(tmp_path):
    cfg = load_config(TINY_CONFIG, ["model.backbone.bottom_up.trainable_stages=[3]"])
    with pytest.raises(ValueError, match=r"only lora_A/lora_B.*trainable_stages=\[3\]"):
        export_peft(instantiate(cfg.model), str(tmp_path / "peft"))
    assert not os.path.exists(tmp_path / "peft")


def test_export_tool_writes_every_format(run, tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        os.path.join(REPO, "tools", "export_model.py"),
        "--run",
        run["dir"],
        "--merged",
        str(out / "merged.pth"),
        "--adapter",
        str(out / "adapter.safetensors"),
        "--peft-dir",
        str(out / "peft"),
    ]
    expected = ["adapter.safetensors", "merged.pth", "merged.yaml", "peft"]
    if importlib.util.find_spec("onnx"):
        cmd += ["--onnx", str(out / "model.onnx")]
        expected.append("model.onnx")
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(os.listdir(out)) == sorted(expected)
    if "model.onnx" in expected:
        import onnx

        props = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
        assert (props["input_height"], props["input_width"]) == ("96", "128")  # image_scale w, h
        assert json.loads(props["class_names"]) == []  # exporttest_val: not registered there
        assert "finetune: frozen" in props["config"]
    # overrides are checked as the training tool checks them, before anything is written
    with pytest.raises(ConfigOverrideError, match="lora_rr"):
        export_main(
            cmd[2:4]
            + ["--adapter", str(out / "x.safetensors"), "model.backbone.bottom_up.lora_rr=8"]
        )
    assert not (out / "x.safetensors").exists()
