"""Command-line ``key=value`` overrides that fail loudly on unknown keys and mistyped values."""

import difflib
import inspect

from detectron2.config import LazyConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = ["apply_overrides", "ConfigOverrideError"]

_MISSING = object()


class ConfigOverrideError(ValueError):
    """A ``key=value`` override names no config field or gives a value of the wrong kind."""


def _target_params(node):
    """Parameter names the node's ``_target_`` accepts, or None if it takes ``**kwargs``."""
    target = node.get("_target_")
    if isinstance(target, str):
        from detectron2.config.instantiate import locate

        target = locate(target)
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return [p for p in sig.parameters if p != "self"]


def _kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple, ListConfig)):
        return "list"
    if isinstance(value, (dict, DictConfig)):
        return "dict"
    return type(value).__name__


# kind of the current value -> kinds an override may give it (null is always accepted)
_COMPATIBLE = {
    "bool": {"bool"},
    "int": {"int"},
    "float": {"float", "int"},
    "str": {"str"},
    "list": {"list"},
    "dict": {"dict"},
}


def _check(cfg, override, key, value):
    parts = key.split(".")
    parent = cfg
    for depth, part in enumerate(parts):
        path = ".".join(parts[: depth + 1])
        try:
            node = OmegaConf.select(cfg, path, default=_MISSING, throw_on_missing=False)
        except Exception:  # an interpolation that cannot be resolved yet; leave it to omegaconf
            return
        if node is _MISSING:
            where = ".".join(parts[:depth]) or "the config"
            if isinstance(parent, DictConfig):
                if "_target_" in parent and depth == len(parts) - 1:
                    accepted = _target_params(parent)
                    if accepted is None or part in accepted:
                        return  # a constructor argument the config leaves at its default
                    raise ConfigOverrideError(
                        f"Override {override!r}: {where} builds {parent['_target_']}, which has "
                        f"no argument {part!r}. It accepts: {', '.join(accepted)}."
                    )
                known = [str(k) for k in parent.keys()]
                hint = difflib.get_close_matches(part, known, n=1)
                raise ConfigOverrideError(
                    f"Override {override!r}: unknown config key {path!r}."
                    + (f" Did you mean {'.'.join(parts[:depth] + [hint[0]])!r}?" if hint else "")
                    + f" Fields of {where}: {', '.join(known)}."
                )
            raise ConfigOverrideError(
                f"Override {override!r}: unknown config key {path!r} ({where} is a "
                f"{_kind(parent)} of length {len(parent)})."
            )
        if node is None:
            return  # an empty slot (e.g. train.clip_grad=None) may be filled with fields
        if depth < len(parts) - 1 and not isinstance(node, (DictConfig, ListConfig)):
            raise ConfigOverrideError(
                f"Override {override!r}: {path!r} is a {_kind(node)} ({node!r}), not a config "
                "node with fields."
            )
        parent = node
    old, new = _kind(parent), _kind(value)
    if old == "null" or new == "null" or old not in _COMPATIBLE:
        return
    if new not in _COMPATIBLE[old]:
        raise ConfigOverrideError(
            f"Override {override!r}: {key!r} expects {'an' if old == 'int' else 'a'} {old} "
            f"(current value "
            f"{OmegaConf.to_container(parent) if old in ('list', 'dict') else parent!r}), "
            f"got {value!r} ({new})."
        )


def apply_overrides(cfg, overrides):
    """
    Apply detectron2 LazyConfig ``key=value`` overrides after checking each one.

    A key must name an existing field, or an argument of the callable that its parent node
    builds (``_target_``). A value must be of the same kind as the current one (an int may set a
    float; null may set anything). Otherwise :class:`ConfigOverrideError` names the key and what
    was expected. Overrides apply in order, so a later one may fill a field an earlier one made.

    Args:
        cfg (DictConfig): the loaded config; changed in place.
        overrides (list[str]): e.g. ``["train.max_iter=100", "optimizer.lr=2e-4"]``.

    Returns:
        DictConfig: ``cfg``.
    """
    overrides = list(overrides or [])
    if not overrides:
        return cfg
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    for override in overrides:
        try:
            (parsed,) = parser.parse_overrides([override])
        except HydraException as e:
            raise ConfigOverrideError(
                f"Cannot parse override {override!r}; expected key=value: {e}"
            ) from e
        if parsed.is_delete():
            raise ConfigOverrideError(f"Override {override!r}: deleting keys is not supported.")
        _check(cfg, override, parsed.key_or_group, parsed.value())
        LazyConfig.apply_overrides(cfg, [override])
    return cfg
