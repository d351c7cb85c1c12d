"""Configs are found by name through sar_lora_dino.model_zoo, as detectron2's model zoo."""

import glob
import os

import pytest

from sar_lora_dino import model_zoo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = sorted(
    "sar_lora_dino/" + os.path.basename(p)
    for p in glob.glob(os.path.join(REPO, "configs", "sar_lora_dino", "*.py"))
)


def test_every_config_of_the_repo_is_shipped():
    assert model_zoo.list_configs() == SHIPPED and len(SHIPPED) >= 14


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_loads_by_name(name):
    cfg = model_zoo.get_config(name)
    for key in ("model", "dataloader", "optimizer", "lr_multiplier", "train"):
        assert key in cfg, f"{name} lacks '{key}'"
    assert cfg.model.backbone.bottom_up.arch == "convnext_small"
    path = model_zoo.get_config_file(name)
    assert os.path.isabs(path) and path.endswith(name)


@pytest.mark.parametrize("name", ["sar_lora_dino/nope.py", "../setup.py", "common/optim.py/.."])
def test_unknown_config_names_the_shipped_ones(name):
    with pytest.raises(FileNotFoundError, match="not a shipped config.*lora_r16_fc1fc2"):
        model_zoo.get_config_file(name)
