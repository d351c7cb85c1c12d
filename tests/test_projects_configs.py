"""Every projects/ config instantiates offline, and its README states its parameter counts."""

import functools
import glob
import os
import re

import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from sar_lora_dino.engine import count_parameters
from sar_lora_dino.modeling.norm import group_norm_32

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECTS = ("FasterRCNN_LoRA", "FCOS_LoRA")
CONFIGS = sorted(
    p
    for name in PROJECTS
    for p in glob.glob(os.path.join(REPO, "projects", name, "configs", "*.py"))
)
# What the backbone's training modes add to the frozen detector (REFERENCE section 1): they do
# not depend on the detector on top.
LORA_ONE_LAYER_R16 = 1_082_880
STAGE3 = 8_390_400
CONVNEXT_S = 49_453_152
MODES = {
    "linear": 0,
    "lora_r16_fc1fc2": 2 * LORA_ONE_LAYER_R16,
    "lora_r16_fc2_ft_stage3": LORA_ONE_LAYER_R16 + STAGE3,
    "full_ft": CONVNEXT_S,
}
# a README row: | `name.py` | ... | 1,234,567 | 1.235M | 12,345,678 |
ROW = re.compile(
    r"^\|\s*`(?P<name>[\w.]+)\.py`\s*\|.*?\|\s*(?P<trainable>[\d,]+)\s*\|"
    r"\s*(?P<millions>[\d.]+)M\s*\|\s*(?P<total>[\d,]+)\s*\|\s*$"
)


def _name(path):
    return os.path.splitext(os.path.basename(path))[0]


def _project(path):
    return os.path.relpath(path, os.path.join(REPO, "projects")).split(os.sep)[0]


def _readme_counts(project):
    with open(os.path.join(REPO, "projects", project, "README.md")) as f:
        rows = [ROW.match(line.strip()) for line in f]
    return {
        m["name"]: (
            int(m["trainable"].replace(",", "")),
            m["millions"],
            int(m["total"].replace(",", "")),
        )
        for m in rows
        if m
    }


@functools.lru_cache(maxsize=None)
def _counts(path):
    # Shapes and requires_grad are all a count needs: building on the meta device skips the
    # allocation and random init of ~60M parameters per config. The tiny configs in
    # tests/test_projects_train.py build and train for real.
    with torch.device("meta"):
        return count_parameters(instantiate(LazyConfig.load(path).model))


def _mode(name):
    matches = [m for m in MODES if name.endswith(f"_convnexts_{m}_sardet100k")]
    assert len(matches) == 1, name
    return matches[0]


def test_each_project_has_the_four_training_modes():
    for project in PROJECTS:
        names = [_name(p) for p in CONFIGS if _project(p) == project]
        assert sorted(_mode(n) for n in names) == sorted(MODES), project


@pytest.mark.parametrize("project", PROJECTS)
def test_readme_lists_every_config_of_its_project(project):
    names = sorted(_name(p) for p in CONFIGS if _project(p) == project)
    assert sorted(_readme_counts(project)) == names


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_readme_parameter_counts_are_the_instantiated_ones(path):
    cfg = LazyConfig.load(path)
    for key in ("model", "dataloader", "optimizer", "lr_multiplier", "train"):
        assert key in cfg, f"{path} lacks '{key}'"
    assert cfg.train.allow_random_init is False  # a shipped config must ask for real weights
    trainable, total = _counts(path)
    stated_trainable, stated_millions, stated_total = _readme_counts(_project(path))[_name(path)]
    assert (trainable, total) == (stated_trainable, stated_total)
    assert stated_millions == f"{trainable / 1e6:.3f}"


@pytest.mark.parametrize("project", PROJECTS)
def test_training_modes_add_the_same_backbone_parameters_as_under_retinanet(project):
    by_mode = {_mode(_name(p)): _counts(p) for p in CONFIGS if _project(p) == project}
    frozen_trainable, frozen_total = by_mode["linear"]
    for mode, added in MODES.items():
        assert by_mode[mode][0] - frozen_trainable == added, mode
    # LoRA adds parameters to the model; stage 3 and full fine-tuning only unfreeze them
    assert by_mode["full_ft"][1] == frozen_total + 0
    assert by_mode["lora_r16_fc1fc2"][1] == frozen_total + 2 * LORA_ONE_LAYER_R16
    assert frozen_total - frozen_trainable == CONVNEXT_S


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_the_backbone_coupled_fields_agree(path):
    cfg = LazyConfig.load(path)
    model = cfg.model
    assert list(model.pixel_mean) == [123.675, 116.28, 103.53]  # RGB, ImageNet, 0-255
    assert list(model.pixel_std) == [58.395, 57.12, 57.375]
    assert cfg.dataloader.train.mapper.image_format == "RGB"
    assert model.get("input_format", "RGB") == "RGB"
    bottom_up = model.backbone.bottom_up
    assert bottom_up.arch == "convnext_small"
    if _project(path) == "FasterRCNN_LoRA":
        assert list(bottom_up.out_features) == ["res2", "res3", "res4", "res5"]
        assert model.roi_heads.num_classes == 6
        assert "mask_head" not in model.roi_heads
        # unset: get_sardet_train_dicts' default, the original's filter
        assert cfg.dataloader.train.dataset.get("filter_mode", "original") == "original"
    else:
        assert list(bottom_up.out_features) == ["res3", "res4", "res5"]
        assert model.num_classes == 6
        assert model.backbone.top_block.in_feature == "p5"
        assert cfg.dataloader.train.dataset.filter_mode == "detectron2"


def test_the_built_faster_rcnn_has_no_mask_branch_and_six_classes():
    path = os.path.join(
        REPO,
        "projects",
        "FasterRCNN_LoRA",
        "configs",
        "faster_rcnn_dinov3_convnexts_linear_sardet100k.py",
    )
    cfg = LazyConfig.load(path)
    cfg.model.backbone.bottom_up.update(depths=[1, 1, 1, 1], dims=[16, 32, 64, 128])
    model = instantiate(cfg.model)
    assert model.roi_heads.mask_on is False
    assert model.roi_heads.box_predictor.cls_score.out_features == 6 + 1
    assert model.roi_heads.box_predictor.bbox_pred.out_features == 6 * 4
    assert list(model.backbone.in_features) == ["res2", "res3", "res4", "res5"]
    assert [s.stride for s in model.backbone.output_shape().values()] == [4, 8, 16, 32, 64]


def test_group_norm_32_is_detectrons_gn_and_survives_the_head_probe():
    norm = group_norm_32(256)
    assert isinstance(norm, torch.nn.GroupNorm) and (norm.num_groups, norm.num_channels) == (
        32,
        256,
    )
    assert group_norm_32(1).num_groups == 1  # detectron2 v0.6's RetinaNetHead probe
    with pytest.raises(ValueError, match="48 channels"):
        group_norm_32(48)
