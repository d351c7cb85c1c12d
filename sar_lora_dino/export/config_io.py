"""LazyConfigs as YAML text, for files written next to exported weights and inside adapters."""

import os
import tempfile

from detectron2.config import LazyConfig

__all__ = ["config_to_yaml", "config_from_yaml"]


def config_to_yaml(cfg) -> str:
    """
    Args:
        cfg (DictConfig): a LazyConfig.

    Returns:
        str: YAML that :func:`config_from_yaml` (``LazyConfig.load``) reads back.
    """
    with tempfile.TemporaryDirectory(prefix="sar_cfg.") as tmp:
        path = os.path.join(tmp, "config.yaml")
        LazyConfig.save(cfg, path)
        if os.path.exists(path + ".pkl") or not os.path.isfile(path):
            raise ValueError(
                "The config holds objects YAML cannot represent (LazyConfig.save fell back to "
                "pickle); keep configs to plain values and LazyCall nodes"
            )
        with open(path, encoding="utf-8") as f:
            return f.read()


def config_from_yaml(text: str):
    """
    Args:
        text (str): YAML from :func:`config_to_yaml`.

    Returns:
        DictConfig
    """
    with tempfile.TemporaryDirectory(prefix="sar_cfg.") as tmp:
        path = os.path.join(tmp, "config.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return LazyConfig.load(path)
