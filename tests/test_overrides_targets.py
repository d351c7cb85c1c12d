"""Overrides of constructor arguments: checked against what the ``_target_`` really accepts."""

import pytest
from detectron2.config import LazyCall as L
from detectron2.modeling.meta_arch.fcos import FCOSHead
from engine_helpers import TINY_CONFIG
from omegaconf import OmegaConf

from sar_lora_dino.engine import ConfigOverrideError, apply_overrides, load_config


class _Parent:
    def __init__(self, depth=1, width=2):
        self.depth, self.width = depth, width


class _Forwards(_Parent):
    def __init__(self, *, mode="a", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode


class _Swallows:
    def __init__(self, size=1, **kwargs):
        self.extra = kwargs


def _options(**kwargs):
    return kwargs


def _node(target):
    return OmegaConf.create({"part": L(target)()})


@pytest.fixture(scope="module")
def tiny():
    return load_config(TINY_CONFIG)


def test_a_typo_under_the_meta_architecture_is_caught(tiny):
    # MMDetRetinaNet takes **kwargs; they go to detectron2's RetinaNet, whose arguments count.
    with pytest.raises(ConfigOverrideError, match=r"'model.num_clases'.*mean 'model.num_classes'"):
        apply_overrides(tiny.copy(), ["model.num_clases=3"])
    with pytest.raises(ConfigOverrideError, match=r"'model.vis_perod'.*'model.vis_period'"):
        apply_overrides(tiny.copy(), ["model.vis_perod=3"])
    cfg = apply_overrides(tiny.copy(), ["model.vis_period=0", "model.loss_normalizer=ema"])
    assert cfg.model.vis_period == 0 and cfg.model.loss_normalizer == "ema"


def test_kwargs_count_only_where_they_reach_the_parent():
    cfg = apply_overrides(_node(_Forwards), ["part.mode=b", "part.width=3"])
    assert (cfg.part.mode, cfg.part.width) == ("b", 3)
    with pytest.raises(ConfigOverrideError, match=r"'part.widht'.*Did you mean 'part.width'"):
        apply_overrides(_node(_Forwards), ["part.widht=3"])
    # **kwargs kept by the class itself, or by a function: only the named arguments are known
    with pytest.raises(ConfigOverrideError, match=r"no argument 'sise'.*accepts: size\."):
        apply_overrides(_node(_Swallows), ["part.sise=3"])
    with pytest.raises(ConfigOverrideError, match=r"no argument 'anything'"):
        apply_overrides(_node(_options), ["part.anything=1"])


def test_an_argument_the_subclass_fixes_is_not_offered():
    # FCOSHead passes num_anchors=1 to RetinaNetHead itself; the rest of its **kwargs go on.
    cfg = apply_overrides(_node(FCOSHead), ["part.prior_prob=0.02"])
    assert cfg.part.prior_prob == 0.02
    with pytest.raises(ConfigOverrideError, match=r"no argument 'num_anchors'"):
        apply_overrides(_node(FCOSHead), ["part.num_anchors=9"])
