"""A run's config.yaml saved before the class renames (old ``_target_`` names) still builds."""

from detectron2.config import LazyConfig, instantiate
from detectron2.config.instantiate import locate
from engine_helpers import TINY_CONFIG

# old _target_ -> new class name; a saved config.yaml names a class by its shortest import path
RENAMED = {
    "sar_lora_dino.modeling.SARBox2BoxTransform": "TwoSidedClampBox2BoxTransform",
    "sar_lora_dino.modeling.SARFPN": "XavierInitFPN",
    "sar_lora_dino.modeling.SARLastLevelP6P7": "NoReLULastLevelP6P7",
    "sar_lora_dino.modeling.SARMatcher": "LowQualityReassignMatcher",
    "sar_lora_dino.modeling.SARRetinaNet": "MMDetRetinaNet",
    "sar_lora_dino.data.SARDatasetMapper": "ScaledImageDatasetMapper",
    "sar_lora_dino.data.SARDetCOCOEvaluator": "ShiftedIdCOCOEvaluator",
    "sar_lora_dino.data.transforms.SARResize": "ResizeWH",
    "sar_lora_dino.checkpoint.SARCheckpointer": "MultiFormatCheckpointer",
}
# the defining modules keep the old names too (configs written by hand, older exports)
MODULES = {
    "SARBox2BoxTransform": "box_transform",
    "SARFPN": "fpn",
    "SARLastLevelP6P7": "fpn",
    "SARMatcher": "matcher",
    "SARRetinaNet": "retinanet",
    "SARDatasetMapper": "mapper",
    "SARDetCOCOEvaluator": "evaluator",
    "SARCheckpointer": "checkpointer",
}


def _new(old):
    return f"{old.rpartition('.')[0]}.{RENAMED[old]}"


def test_every_old_name_is_the_new_class():
    for old in RENAMED:
        assert locate(old) is locate(_new(old)), old
        package, _, name = old.rpartition(".")
        if name in MODULES:
            assert locate(f"{package}.{MODULES[name]}.{name}") is locate(_new(old)), old


def test_a_config_yaml_with_the_old_targets_instantiates(tmp_path):
    path = str(tmp_path / "config.yaml")
    LazyConfig.save(LazyConfig.load(TINY_CONFIG), path)
    with open(path) as f:
        text = f.read()
    in_config = [old for old in RENAMED if f"_target_: {_new(old)}" in text]
    assert len(in_config) == 8  # all but the checkpointer
    for old in in_config:
        text = text.replace(f"_target_: {_new(old)}", f"_target_: {old}")
    with open(path, "w") as f:
        f.write(text)
    cfg = LazyConfig.load(path)
    assert cfg.model._target_ == "sar_lora_dino.modeling.SARRetinaNet"
    assert cfg.dataloader.evaluator._target_ == "sar_lora_dino.data.SARDetCOCOEvaluator"
    model = instantiate(cfg.model)
    assert type(model).__name__ == "MMDetRetinaNet"
    assert type(model.backbone).__name__ == "XavierInitFPN"
    assert type(model.anchor_matcher).__name__ == "LowQualityReassignMatcher"
    mapper = instantiate(cfg.dataloader.train.mapper)
    assert type(mapper).__name__ == "ScaledImageDatasetMapper"
    assert type(mapper.augmentations.augs[0]).__name__ == "ResizeWH"
