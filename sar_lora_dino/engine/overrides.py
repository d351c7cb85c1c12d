"""Command-line ``key=value`` overrides that fail loudly on unknown keys and mistyped values."""

import ast
import difflib
import inspect
import textwrap

from detectron2.config import LazyConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = ["apply_overrides", "ConfigOverrideError"]

_MISSING = object()


class ConfigOverrideError(ValueError):
    """A ``key=value`` override names no config field or gives a value of the wrong kind."""


def _forwards_kwargs_to_super(init, var_kw):
    """
    The keywords ``init`` passes by name to ``super().__init__(..., **var_kw)``, or None if its
    source does not forward ``**var_kw`` that way.
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(init))))
    except (OSError, TypeError, SyntaxError):
        return None
    for call in ast.walk(tree):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "__init__"
            and isinstance(call.func.value, ast.Call)
            and getattr(call.func.value.func, "id", None) == "super"
            and any(k.arg is None and getattr(k.value, "id", None) == var_kw for k in call.keywords)
        ):
            return {k.arg for k in call.keywords if k.arg is not None}
    return None


def _named(parameters):
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p.name for p in parameters if p.kind not in kinds]


def _var_keyword(parameters):
    return next((p.name for p in parameters if p.kind == p.VAR_KEYWORD), None)


def _target_params(target):
    """
    The argument names ``target`` (a ``_target_``) accepts, or None if they cannot be known.
    A class's ``**kwargs`` counts only where its ``__init__`` hands them on to
    ``super().__init__``: then the parent's arguments count too (minus those the class fixes).
    """
    if isinstance(target, str):
        from detectron2.config.instantiate import locate

        target = locate(target)
    try:
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return None
    names = _named(parameters)
    if _var_keyword(parameters) is None or not inspect.isclass(target):
        return names
    fixed = set()
    for cls in [c for c in target.__mro__ if "__init__" in vars(c)]:
        init = vars(cls)["__init__"]
        parameters = list(inspect.signature(init).parameters.values())[1:]  # self
        own = _named(parameters)
        names += [n for n in own if n not in names and n not in fixed]
        var_kw = _var_keyword(parameters)
        passed = _forwards_kwargs_to_super(init, var_kw) if var_kw else None
        if passed is None:
            break
        fixed |= passed - set(own)
    return names


def _name(target):
    return target if isinstance(target, str) else f"{target.__module__}.{target.__qualname__}"


# the kinds of value an override is checked for (bool before int: True is an int)
_KINDS = {
    "null": type(None),
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "list": (list, tuple, ListConfig),
    "dict": (dict, DictConfig),
}


def _kind(value):
    return next((k for k, t in _KINDS.items() if isinstance(value, t)), type(value).__name__)


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
                known = [str(k) for k in parent.keys() if k != "_target_"]
                accepted = _target_params(parent["_target_"]) if "_target_" in parent else None
                if accepted is not None:
                    known += [a for a in accepted if a not in known]
                    if part in accepted and depth == len(parts) - 1:
                        return  # a constructor argument the config leaves at its default
                elif "_target_" in parent and depth == len(parts) - 1:
                    return  # a callable whose arguments cannot be known
                hint = difflib.get_close_matches(part, known, n=3)
                hint = " or ".join(repr(".".join(parts[:depth] + [h])) for h in hint)
                raise ConfigOverrideError(
                    f"Override {override!r}: unknown config key {path!r}."
                    + (f" Did you mean {hint}?" if hint else "")
                    + (
                        f" {where} builds {_name(parent['_target_'])}, which has no argument "
                        f"{part!r}; it accepts: {', '.join(known)}."
                        if accepted is not None
                        else f" Fields of {where}: {', '.join(known)}."
                    )
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
    if "null" in (old, new) or old not in _KINDS or (old, new) == ("float", "int"):
        return  # null sets and clears anything; an int may set a float
    if new != old:
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
    builds (``_target_``; a class's ``**kwargs`` count as its parent's arguments when its
    ``__init__`` passes them to ``super().__init__``, and as nothing otherwise). A value must be
    of the same kind as the current one (an int may set a float; null may set anything).
    Otherwise :class:`ConfigOverrideError` names the key and what was expected, with the closest
    valid keys. Overrides (e.g. ``["train.max_iter=100"]``) apply in order, so a later one may
    fill a field an earlier one made. ``cfg`` is changed in place and returned.
    """
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
