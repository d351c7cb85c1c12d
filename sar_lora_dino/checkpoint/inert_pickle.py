"""Read weight files running no pickled code: other libraries' objects (MMEngine's) stay inert."""

import os
from typing import Any, Dict, Mapping, Sequence

import torch
from safetensors.torch import load_file

__all__ = [
    "InertObject",
    "few_keys",
    "load_torch_file",
    "read_checkpoint_file",
    "unwrap_state_dict",
]


class InertObject:
    """
    Stands for an object of a class this project does not import: it keeps the arguments and the
    state the file recorded, and runs nothing. Its type has the module and name the file asked
    for (e.g. ``mmengine.logging.history_buffer.HistoryBuffer``).
    """

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<inert {type(self).__module__}.{type(self).__qualname__}>"


def _stand_in(full_name):
    module, _, name = full_name.rpartition(".")
    return type(name, (InertObject,), {"__module__": module, "__qualname__": name})


def load_torch_file(path):
    """
    ``torch.load(path, weights_only=True)`` (torch's restricted unpickler: tensors and plain
    containers only), where each class or function outside what it allows becomes an
    :class:`InertObject` type of that name instead of an error. So a checkpoint as MMEngine's
    runner writes it (``message_hub``, optimizer, numpy scalars) opens without MMEngine and
    without executing pickled code; its tensors are real, everything else is inert. ``path``
    is a torch file in the zip format (torch >= 1.6).
    """
    unknown = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    with torch.serialization.safe_globals([(_stand_in(name), name) for name in unknown]):
        return torch.load(path, map_location="cpu", weights_only=True)


def few_keys(keys: Sequence[str], n: int = 5) -> str:
    """How many ``keys`` there are and the first ``n`` in order, for error messages."""
    keys = sorted(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return f"{len(keys)} key(s): {keys[:n]}{more}"


def read_checkpoint_file(path: str) -> Any:
    """
    Read a weight file: ``.safetensors`` with safetensors, anything else (``.pth``, ``.pt``,
    ``.bin``, ...) with :func:`load_torch_file` (tensors and plain containers; objects of other
    libraries, e.g. MMEngine's, become inert placeholders).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            return load_file(path, device="cpu")
        return load_torch_file(path)
    except Exception as e:
        raise ValueError(
            f"Cannot read checkpoint file {path} ({type(e).__name__}: {e}). Expected a torch "
            "file (.pth/.pt/.bin) or a .safetensors file"
        ) from e


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> Dict[str, torch.Tensor]:
    """
    The state dict inside ``obj``, what :func:`read_checkpoint_file` returned: ``obj`` itself
    when it maps names to tensors, else the single one of ``obj["model"]`` /
    ``obj["state_dict"]`` that does. ``source`` names the file in error messages.
    """
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        wrapped = [k for k in ("model", "state_dict") if _is_state_dict(obj.get(k))]
        if len(wrapped) == 1:
            return dict(obj[wrapped[0]])
        if len(wrapped) > 1:
            raise ValueError(
                f"{source}: ambiguous checkpoint, both 'model' and 'state_dict' hold weights"
            )
        found = f"a dict with keys {few_keys([str(k) for k in obj])}"
    else:
        found = f"a {type(obj).__name__}"
    raise ValueError(
        f"{source}: expected a state dict (names -> tensors), or a dict holding one under "
        f"'model' or 'state_dict'; found {found}"
    )
