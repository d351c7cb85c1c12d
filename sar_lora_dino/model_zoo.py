"""The project's LazyConfig files by name, from the installed package or a source checkout."""

import os
from typing import List

from detectron2.config import LazyConfig

__all__ = ["get_config_file", "get_config", "list_configs"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _configs_root() -> str:
    # An installed package carries the configs inside it (setup.py copies or links them there);
    # a source checkout has them at its top level.
    for root in (
        os.path.join(_PACKAGE_DIR, "configs"),
        os.path.join(os.path.dirname(_PACKAGE_DIR), "configs"),
    ):
        if os.path.isdir(os.path.join(root, "sar_lora_dino")):
            return root
    raise FileNotFoundError(
        f"No configs found in {_PACKAGE_DIR}/configs nor beside the package; reinstall "
        "sar_lora_dino (pip install .) so that its configs are installed with it"
    )


def list_configs() -> List[str]:
    """Names of the shipped detector configs: ``"sar_lora_dino/<file>.py"``."""
    folder = os.path.join(_configs_root(), "sar_lora_dino")
    return sorted(f"sar_lora_dino/{f}" for f in os.listdir(folder) if f.endswith(".py"))


def get_config_file(config_path: str) -> str:
    """
    Absolute path of a shipped config by its name relative to the configs folder (e.g.
    ``"sar_lora_dino/retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k.py"``), as
    detectron2's ``model_zoo.get_config_file``.
    """
    root = _configs_root()
    path = os.path.normpath(os.path.join(root, config_path))
    if not path.startswith(root + os.sep) or not os.path.isfile(path):
        names = ", ".join(os.path.basename(n) for n in list_configs())
        raise FileNotFoundError(
            f"{config_path!r} is not a shipped config (looked in {root}); shipped configs are "
            f"sar_lora_dino/<name> for <name> in: {names}"
        )
    return path


def get_config(config_path: str):
    """
    Load a shipped LazyConfig by name (see :func:`get_config_file`), as detectron2's
    ``model_zoo.get_config``; instantiate its ``model`` to build the detector.
    """
    return LazyConfig.load(get_config_file(config_path))
