"""Read torch files holding other libraries' objects (MMEngine's runner state), running none."""

import torch

__all__ = ["InertObject", "load_torch_file"]


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
