"""The one recorded transform that maps 16-bit/float SAR values to the model's 0-255 input range."""

import math
import re
from typing import NamedTuple, Optional, Tuple

import numpy as np

__all__ = [
    "SCALING_HELP",
    "Scaling",
    "apply_scaling",
    "describe_scaling",
    "parse_scaling",
    "scaling_bounds",
]

SCALING_HELP = (
    "'none' (values are used as they are and must lie in 0..255), 'minmax' (the image's minimum "
    "-> 0, maximum -> 255), 'percentile(lo,hi)' (the lo-th and hi-th percentiles -> 0 and 255, "
    "values beyond clipped), 'db(min_db,max_db)' (amplitude in decibels, 20*log10(x), with "
    "min_db -> 0 and max_db -> 255, clipped) or 'db(min_db,max_db,power)' (intensity/power "
    "data, 10*log10(x)). 8-bit images are already in the model's range and are never scaled."
)

_PATTERN = re.compile(r"^\s*([a-z]+)\s*(?:\((.*)\))?\s*$")


class Scaling(NamedTuple):
    """A parsed ``dataloader.scaling`` value."""

    mode: str  # "none", "minmax", "percentile" or "db"
    low: float = 0.0  # percentile: lower percentile; db: min_db
    high: float = 0.0  # percentile: upper percentile; db: max_db
    power: bool = False  # db: the values are power/intensity (10*log10) rather than amplitude

    def __str__(self):
        if self.mode in ("none", "minmax"):
            return self.mode
        args = f"{self.low:g},{self.high:g}" + (",power" if self.power else "")
        return f"{self.mode}({args})"


def parse_scaling(spec) -> Scaling:
    """``spec``: a :class:`Scaling`, None ("none") or a string of :data:`SCALING_HELP`."""
    if isinstance(spec, Scaling):
        return spec
    if spec is None:
        return Scaling("none")
    match = _PATTERN.match(str(spec).lower())
    mode, args = match.groups() if match else (None, None)
    parts = [a.strip() for a in args.split(",")] if args is not None else []
    try:
        if mode in ("none", "minmax") and not parts:
            return Scaling(mode)
        if mode == "percentile" and len(parts) == 2:
            low, high = float(parts[0]), float(parts[1])
            if 0 <= low < high <= 100:
                return Scaling(mode, low, high)
        if mode == "db" and len(parts) in (2, 3):
            low, high = float(parts[0]), float(parts[1])
            quantity = parts[2] if len(parts) == 3 else "amplitude"
            if low < high and quantity in ("amplitude", "power"):
                return Scaling(mode, low, high, quantity == "power")
    except ValueError:
        pass
    raise ValueError(f"dataloader.scaling: cannot use {spec!r}; expected {SCALING_HELP}")


def _check_real(array, source):
    if np.iscomplexobj(array):
        raise ValueError(
            f"{source}: complex ({array.dtype}) pixels, i.e. single-look complex (SLC) data; "
            "convert it to amplitude first (e.g. numpy.abs, or a detected/GRD product)."
        )


def _finite(array):
    return array[np.isfinite(array)] if array.dtype.kind == "f" else array


def scaling_bounds(array, scaling, source="image") -> Optional[Tuple[float, float]]:
    """
    The input values (decibels for "db") that ``scaling`` maps to 0 and 255 in ``array`` (an
    image or a representative sample of a scene); None for "none". ``source`` names the
    image in errors, here and below.
    """
    scaling = parse_scaling(scaling)
    _check_real(array, source)
    if scaling.mode == "none":
        return None
    if scaling.mode == "db":
        return (scaling.low, scaling.high)
    finite = _finite(array)
    if finite.size == 0:
        raise ValueError(f"{source}: no finite pixel value to compute {scaling} from")
    if scaling.mode == "minmax":
        return (float(finite.min()), float(finite.max()))
    low, high = np.percentile(finite, [scaling.low, scaling.high])
    return (float(low), float(high))


def apply_scaling(array, scaling, bounds=None, source="image"):
    """
    Map an image of any real dtype to the model's 0-255 range: uint8 ``array`` itself, else
    float32 in [0, 255] (non-finite pixels become 0).

    Args:
        bounds (tuple or None): from :func:`scaling_bounds`; None computes them from ``array``
            (per image). A scene read in tiles passes the scene's bounds.
    """
    scaling = parse_scaling(scaling)
    _check_real(array, source)
    if array.dtype == np.uint8:
        return array
    if scaling.mode == "none":
        lo, hi = (float(np.nanmin(array)), float(np.nanmax(array))) if array.size else (0, 0)
        if lo < 0 or hi > 255 or math.isnan(lo):
            raise ValueError(
                f"{source}: {array.dtype} values in [{lo:g}, {hi:g}] do not fit the model's "
                f"0..255 input and dataloader.scaling is 'none'. Choose a scaling: {SCALING_HELP}"
            )
        return array.astype(np.float32)
    if bounds is None:
        bounds = scaling_bounds(array, scaling, source)
    low, high = bounds
    values = array.astype(np.float64)
    if scaling.mode == "db":
        if np.nanmin(values) < 0:
            raise ValueError(
                f"{source}: negative values ({np.nanmin(values):g}) cannot be {scaling}: "
                "amplitude and power are >= 0; data already in decibels needs 'percentile' or "
                "'minmax'."
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            values = (10.0 if scaling.power else 20.0) * np.log10(values)
        values[values == -np.inf] = low
    span = high - low
    out = (values - low) * (255.0 / span) if span > 0 else np.zeros_like(values)
    out[~np.isfinite(out)] = 0.0
    return np.clip(out, 0.0, 255.0).astype(np.float32)


def describe_scaling(array, scaling, source="image"):
    """What ``scaling`` does to one image as read, in one line, and the problem (or None)."""
    scaling = parse_scaling(scaling)
    finite = _finite(array)
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (math.nan, math.nan)
    values = (
        f"{array.dtype} {array.shape[2] if array.ndim == 3 else 1}-channel, values [{lo:g}, {hi:g}]"
    )
    try:
        bounds = scaling_bounds(array, scaling, source)
        scaled = apply_scaling(array, scaling, bounds, source)
    except ValueError as e:
        return f"{source}: {values}: unusable with scaling '{scaling}'", str(e)
    if bounds is None:
        return f"{source}: {values}, used as they are (scaling 'none')", None
    clipped = float(np.mean((scaled <= 0) | (scaled >= 255)))
    unit = " dB" if scaling.mode == "db" else ""
    return (
        f"{source}: {values} -> '{scaling}' maps [{bounds[0]:g}, {bounds[1]:g}]{unit} to 0..255, "
        f"{clipped:.1%} of pixels at 0 or 255",
        None,
    )
