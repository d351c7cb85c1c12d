"""Files that are never half-written: write to a temporary file beside the target, then rename."""

import contextlib
import os
import shutil
import tempfile

__all__ = ["TEMP_PREFIX", "atomic_dir", "atomic_path", "atomic_write"]

# Every temporary file of ours starts with this, so stale ones from a killed run can be found.
TEMP_PREFIX = ".sar_tmp."


@contextlib.contextmanager
def atomic_path(path):
    """
    Yield a temporary path in the folder of ``path`` (created if needed); on a clean exit it
    replaces ``path`` in one rename, on any exception (or a kill) the old file stays as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.path.basename(path)}.", dir=directory)
    os.close(fd)
    # mkstemp makes the file owner-only; give it the permissions an ordinary open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, write_fn, mode="wb"):
    """Write ``path`` by ``write_fn(open file)``: readers see the old content or all the new."""
    with atomic_path(path) as tmp:
        with open(tmp, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_dir(path, overwrite=False):
    """
    Yield a fresh temporary folder beside ``path``; on a clean exit it becomes ``path`` (an
    existing one is an error unless ``overwrite``), on any exception it is deleted.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"'{path}' exists; choose another path or allow overwriting.")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.path.basename(path)}.", dir=parent)
    try:
        yield tmp
        if os.path.exists(path):
            old = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}old.{os.path.basename(path)}.", dir=parent)
            os.rename(path, os.path.join(old, "data"))
            os.rename(tmp, path)
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
