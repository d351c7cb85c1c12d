"""Small helpers shared by the package and its tools."""

from .io import atomic_dir, atomic_path, atomic_write

__all__ = ["atomic_dir", "atomic_path", "atomic_write"]
