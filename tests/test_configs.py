"""Every shipped LazyConfig loads, instantiates offline and has the paper's parameter count."""

import glob
import os

import numpy as np
import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from sar_lora_dino.semantics import DIFFERENCES, RESIZE_FIELD

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "sar_lora_dino", "*.py")))

# Trainable parameters of the whole detector, from REFERENCE section 1:
# FPN 4,474,880 + head 4,928,090 = 9,402,970; LoRA on fc1+fc2 of 36 blocks at r=16 = 2,165,760;
# one of fc1/fc2 is half of that; the last stage without the LoRA base weights = 8,390,400;
# the ConvNeXt-S feature extractor = 49,453,152.
PROBE = 9_402_970
LORA_ONE_LAYER_R16 = 1_082_880
STAGE3 = 8_390_400
# With LoRA on fc1 as well, stage 3's three fc1 base layers (768 -> 3072, with bias) stay frozen.
STAGE3_FC1_BASE = 3 * (768 * 3072 + 3072)
EXPECTED = {
    "retinanet_dinov3_convnexts_linear_sardet100k": PROBE,
    "retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k": PROBE + 2 * LORA_ONE_LAYER_R16,
    "retinanet_dinov3_convnexts_lora_r16_fc2_ft_stage3_sardet100k": PROBE
    + LORA_ONE_LAYER_R16
    + STAGE3,
    "retinanet_dinov3_convnexts_full_ft_sardet100k": PROBE + 49_453_152,
    "retinanet_dinov3_convnexts_lora_r16_fc1_sardet100k": PROBE + LORA_ONE_LAYER_R16,
    "retinanet_dinov3_convnexts_lora_r16_fc2_sardet100k": PROBE + LORA_ONE_LAYER_R16,
    "retinanet_dinov3_convnexts_lora_r4_fc1fc2_sardet100k": PROBE + 2 * LORA_ONE_LAYER_R16 // 4,
    "retinanet_dinov3_convnexts_lora_r8_fc1fc2_sardet100k": PROBE + 2 * LORA_ONE_LAYER_R16 // 2,
    "retinanet_dinov3_convnexts_lora_r16_fc1fc2_ft_stage3_sardet100k": PROBE
    + 2 * LORA_ONE_LAYER_R16
    + STAGE3
    - STAGE3_FC1_BASE,
    "retinanet_dinov3_convnexts_lora_r4_fc2_ft_stage3_sardet100k": PROBE
    + LORA_ONE_LAYER_R16 // 4
    + STAGE3,
    "retinanet_dinov3_convnexts_lora_r8_fc2_ft_stage3_sardet100k": PROBE
    + LORA_ONE_LAYER_R16 // 2
    + STAGE3,
    "retinanet_dinov3_convnexts_lora_r16_fc1fc2_d2semantics_sardet100k": PROBE
    + 2 * LORA_ONE_LAYER_R16,
    "retinanet_in1k_convnexts_linear_sardet100k": PROBE,
    "retinanet_in1k_convnexts_full_ft_sardet100k": PROBE + 49_453_152,
}
# The four headline counts as the paper prints them, in millions.
PAPER_MILLIONS = {
    "retinanet_dinov3_convnexts_linear_sardet100k": "9.403",
    "retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k": "11.569",
    "retinanet_dinov3_convnexts_lora_r16_fc2_ft_stage3_sardet100k": "18.876",
    "retinanet_dinov3_convnexts_full_ft_sardet100k": "58.856",
}


CONFIG_BY_NAME = {
    "original": "retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k.py",
    "detectron2": "retinanet_dinov3_convnexts_lora_r16_fc1fc2_d2semantics_sardet100k.py",
}


def _name(path):
    return os.path.splitext(os.path.basename(path))[0]


def test_every_config_has_an_expected_count():
    assert sorted(_name(p) for p in CONFIGS) == sorted(EXPECTED)


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_config_instantiates_with_paper_param_count(path):
    cfg = LazyConfig.load(path)
    for key in ("model", "dataloader", "optimizer", "lr_multiplier", "train"):
        assert key in cfg, f"{path} lacks '{key}'"
    with torch.device("meta"):  # the structure and requires_grad, without computing weights
        model = instantiate(cfg.model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == EXPECTED[_name(path)]
    if _name(path) in PAPER_MILLIONS:
        assert f"{trainable / 1e6:.3f}" == PAPER_MILLIONS[_name(path)]
    # FPN and head always train, whatever the backbone mode.
    for name, p in model.named_parameters():
        if not name.startswith("backbone.bottom_up."):
            assert p.requires_grad, name
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    assert isinstance(optimizer, torch.optim.AdamW)
    in_optimizer = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    assert in_optimizer == trainable
    assert all(g["weight_decay"] == 0.05 for g in optimizer.param_groups)


def test_schedule_matches_the_original_recipe():
    cfg = LazyConfig.load(CONFIGS[0])
    assert cfg.train.max_iter == 70_872
    assert cfg.train.eval_period == 5_906
    sched = instantiate(cfg.lr_multiplier)
    max_iter = cfg.train.max_iter
    at = lambda it: sched(it / max_iter)  # noqa: E731
    assert at(0) == pytest.approx(0.001)
    assert at(250) == pytest.approx(0.001 + 0.999 * 0.5, rel=1e-3)
    assert at(500) == pytest.approx(1.0)
    assert at(8 * 5906 - 1) == pytest.approx(1.0)
    assert at(8 * 5906) == pytest.approx(0.1)
    assert at(11 * 5906) == pytest.approx(0.01)


def test_data_config_matches_the_original_recipe():
    cfg = LazyConfig.load(CONFIGS[0])
    assert cfg.dataloader.train.total_batch_size == 16
    assert cfg.dataloader.train.mapper.image_format == "RGB"
    assert cfg.model.input_format == "RGB"
    assert list(cfg.model.pixel_mean) == [123.675, 116.28, 103.53]
    assert list(cfg.model.pixel_std) == [58.395, 57.12, 57.375]
    assert cfg.dataloader.test.dataset.names == "sardet100k_val"
    assert cfg.dataloader.evaluator.dataset_name == "sardet100k_val"
    # One override changes the train and test input size together; scale is (w, h).
    cfg = LazyConfig.apply_overrides(cfg, ["dataloader.image_scale=[320,256]"])
    image = np.zeros((100, 120, 3), np.uint8)
    for mapper in (cfg.dataloader.train.mapper, cfg.dataloader.test.mapper):
        resize = instantiate(mapper.augmentations)[0]
        assert resize.get_transform(image).apply_image(image).shape[:2] == (256, 320)


def _switch_values(cfg):
    """Each switch of sar_lora_dino.semantics.DIFFERENCES as the config sets it (None: unset)."""
    values = []
    for diff in DIFFERENCES:
        if diff.field == RESIZE_FIELD:
            for split in ("train", "test"):
                values.append(cfg.dataloader[split].mapper.augmentations[0].get("backend"))
        else:
            *parents, leaf = diff.field.split(".")
            node = cfg
            for name in parents:
                node = node[name]
            values.append(node.get(leaf))
    return values


def _table_values(semantics):
    values = []
    for diff in DIFFERENCES:
        values += [getattr(diff, semantics)] * (2 if diff.field == RESIZE_FIELD else 1)
    return values


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_paper_configs_leave_the_original_semantics_to_the_defaults(path):
    values = _switch_values(LazyConfig.load(path))
    if _name(path) + ".py" == CONFIG_BY_NAME["detectron2"]:
        assert values == _table_values("detectron2")
    else:  # the components' defaults are the original's (tests/test_fidelity_semantics.py)
        assert values == [None] * len(values)
