"""ConvNeXtBackbone: detectron2 contract, parameter counts and what each fine-tune mode trains."""

import pytest
import timm
import torch
from _models import tiny_model
from detectron2.config import get_cfg
from detectron2.modeling import BACKBONE_REGISTRY, build_backbone
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from sar_lora_dino.modeling import ConvNeXtBackbone, LoRALinear, add_convnext_config


def _trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_contract(tiny_backbone):
    backbone = tiny_backbone(out_features=("res3", "res4", "res5"))
    assert backbone.size_divisibility == 32
    assert backbone._out_features == ["res3", "res4", "res5"]
    shapes = backbone.output_shape()
    assert {k: (v.channels, v.stride) for k, v in shapes.items()} == {
        "res3": (32, 8),
        "res4": (64, 16),
        "res5": (128, 32),
    }
    out = backbone(torch.randn(1, 3, 200, 249))
    assert list(out) == ["res3", "res4", "res5"]
    # timm's stride-4 stem and 2x2/2 downsampling floor odd sizes: 200x249 -> 50x62 -> ...
    assert {k: tuple(v.shape[2:]) for k, v in out.items()} == {
        "res3": (25, 31),
        "res4": (12, 15),
        "res5": (6, 7),
    }
    for name, tensor in out.items():
        assert tensor.shape[1] == shapes[name].channels


def test_convnext_small_keys_and_shapes():
    with torch.device("meta"):
        backbone = ConvNeXtBackbone(arch="convnext_small", finetune="full")
    assert {k: (v.channels, v.stride) for k, v in backbone.output_shape().items()} == {
        "res2": (96, 4),
        "res3": (192, 8),
        "res4": (384, 16),
        "res5": (768, 32),
    }
    keys = set(backbone.state_dict())
    timm_keys = ("stem.0.weight", "stages.2.blocks.5.mlp.fc1.weight", "stages.1.downsample.1.bias")
    for key in timm_keys:
        assert key in keys, key
    assert not any(k.startswith(("head", "norm_pre")) for k in keys)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"finetune": "frozen"}, 0),
        ({"finetune": "lora"}, 2_165_760),
        ({"finetune": "lora", "lora_targets": ("mlp.fc2",)}, 1_082_880),
        ({"finetune": "lora", "lora_targets": ("mlp.fc2",), "trainable_stages": (3,)}, 9_473_280),
        ({"finetune": "full"}, 49_453_152),
    ],
)
def test_convnext_small_trainable_params(kwargs, expected):
    with torch.device("meta"):  # counts only: skip the random init of 50M weights
        backbone = ConvNeXtBackbone(arch="convnext_small", **kwargs)
    assert _trainable(backbone) == expected
    if kwargs["finetune"] != "lora":
        assert sum(p.numel() for p in backbone.parameters()) == 49_453_152


def _expected_trainable(backbone):
    """Parameter -> trains?, derived from the module structure independently of the code."""
    wrapped = [m for m in backbone.modules() if isinstance(m, LoRALinear)]
    lora = {id(p) for m in wrapped for p in m.lora_parameters()}
    base = {id(p) for m in wrapped for p in m.base_parameters()}
    staged = set()
    for idx in backbone.trainable_stages:
        staged |= {id(p) for p in backbone.stages[idx].parameters()}
        if idx == 0:
            staged |= {id(p) for p in backbone.stem.parameters()}
    expected = {}
    for name, p in backbone.named_parameters():
        if backbone.finetune == "full":
            expected[name] = True
        else:
            expected[name] = id(p) in lora or (id(p) in staged and id(p) not in base)
    return expected


def _instances(h, w):
    inst = Instances((h, w))
    inst.gt_boxes = Boxes(torch.tensor([[10.0, 12.0, 60.0, 50.0], [30.0, 5.0, 90.0, 80.0]]))
    inst.gt_classes = torch.tensor([0, 3])
    return inst


@pytest.mark.parametrize(
    "kwargs",
    [
        {"finetune": "frozen"},
        {"finetune": "lora"},
        {"finetune": "lora", "lora_targets": ("mlp.fc2",), "trainable_stages": (3,)},
        {"finetune": "frozen", "trainable_stages": (0, 2)},
        {"finetune": "full"},
    ],
)
def test_gradients_reach_exactly_the_intended_params(kwargs):
    model = tiny_model(bottom_up=kwargs)
    model.train()
    backbone = model.backbone.bottom_up
    batch = [{"image": torch.rand(3, 96, 128) * 255, "instances": _instances(96, 128)}]
    with EventStorage():
        losses = model(batch)
    sum(losses.values()).backward()
    expected = _expected_trainable(backbone)
    for name, p in backbone.named_parameters():
        assert p.requires_grad == expected[name], name
        assert (p.grad is not None) == expected[name], name
    for name, p in model.named_parameters():
        if not name.startswith("backbone.bottom_up."):
            assert p.requires_grad and p.grad is not None, name


def test_lora_base_stays_frozen_in_trainable_stage(tiny_backbone):
    backbone = tiny_backbone(finetune="lora", trainable_stages=(3,))
    fc1 = backbone.stages[3].blocks[0].mlp.fc1
    assert isinstance(fc1, LoRALinear)
    assert not fc1.weight.requires_grad and not fc1.bias.requires_grad and fc1.lora_A.requires_grad
    assert backbone.stages[3].downsample[1].weight.requires_grad
    assert backbone.stages[3].blocks[0].gamma.requires_grad
    assert not backbone.stages[2].blocks[0].gamma.requires_grad


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"finetune": "lora_only"}, "finetune must be one of"),
        ({"trainable_stages": (4,)}, "trainable_stages"),
        ({"trainable_stages": (-1,)}, "trainable_stages"),
        ({"finetune": "full", "trainable_stages": (3,)}, "only applies"),
        ({"out_features": ("res6",)}, "out_features"),
    ],
)
def test_invalid_arguments(tiny_backbone, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_backbone(**kwargs)


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_gradient_checkpointing_gives_same_gradients_and_saves_less(
    tiny_backbone, finetune, monkeypatch
):
    # with "lora" the stem is frozen and the input needs no gradient: reentrant checkpointing
    # would hand the LoRA adapters no gradient at all, so timm's switch to it must not apply
    monkeypatch.setattr(timm.layers.config, "_USE_REENTRANT_CKPT", True)
    x = torch.randn(2, 3, 32, 32)
    grads, saved = [], []
    for ckpt in (False, True):
        backbone = tiny_backbone(finetune=finetune, use_checkpoint=ckpt)
        count = [0]

        def pack(t):
            count[0] += 1
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = sum(v.square().mean() for v in backbone(x).values())
        loss.backward()
        saved.append(count[0])
        grads.append({n: p.grad for n, p in backbone.named_parameters() if p.requires_grad})
    lora = [n for n in grads[1] if "lora_" in n]
    assert (len(lora) > 0) == (finetune == "lora")
    for name in lora:  # lora_B starts at zero, so only lora_B's gradient is non-zero at first
        assert grads[1][name] is not None, name
        assert "lora_A" in name or grads[1][name].abs().sum() > 0, name
    assert grads[0].keys() == grads[1].keys()
    for name, a in grads[0].items():
        torch.testing.assert_close(a, grads[1][name], msg=name)
    assert saved[1] < saved[0]  # checkpointing is really on


def test_registry_and_yacs_config():
    assert BACKBONE_REGISTRY.get("ConvNeXtBackbone") is ConvNeXtBackbone
    cfg = get_cfg()
    add_convnext_config(cfg)
    assert cfg.MODEL.CONVNEXT.LORA_TARGETS == ["mlp.fc1", "mlp.fc2"]
    assert isinstance(cfg.MODEL.CONVNEXT.LORA_ALPHA, float)  # a yaml may set 16.0
    cfg.MODEL.BACKBONE.NAME = "ConvNeXtBackbone"
    cfg.MODEL.CONVNEXT.ARCH = "convnext_tiny"
    cfg.MODEL.CONVNEXT.FINETUNE = "frozen"
    with torch.device("meta"):  # the structure only: skip the random init of 28M weights
        backbone = build_backbone(cfg)
    assert isinstance(backbone, ConvNeXtBackbone) and backbone.arch == "convnext_tiny"
    assert _trainable(backbone) == 0
