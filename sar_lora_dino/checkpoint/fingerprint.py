"""Fingerprints of weight files, so every result and adapter names the exact weights it used."""

import hashlib
import os

__all__ = ["RANDOM_INIT", "file_fingerprint", "same_weights"]

# What a run records as its initial weights when it started from a random backbone.
RANDOM_INIT = "random"

_CHUNK = 1 << 20  # 1 MiB


def file_fingerprint(path):
    """
    Identify a weight file cheaply but reliably: sha256 of the whole file when it is at most
    2 MiB, else of its first and last MiB plus its size (a 337 MB checkpoint hashes in
    milliseconds, and two different trainings never share both ends).

    Returns:
        dict: ``{"path": absolute path, "size": bytes, "sha256": hex digest,
        "scope": "whole" | "first+last MiB"}``.
    """
    path = os.path.abspath(path)
    size = os.path.getsize(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= 2 * _CHUNK:
            digest.update(f.read())
            scope = "whole"
        else:
            digest.update(f.read(_CHUNK))
            f.seek(size - _CHUNK)
            digest.update(f.read(_CHUNK))
            digest.update(str(size).encode())
            scope = "first+last MiB"
    return {"path": path, "size": size, "sha256": digest.hexdigest(), "scope": scope}


def same_weights(a, b):
    """
    Whether two fingerprints (dicts from :func:`file_fingerprint`, or :data:`RANDOM_INIT`) name
    the same weights; the path does not matter, the content does.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        return (a["sha256"], a["size"], a["scope"]) == (b["sha256"], b["size"], b["scope"])
    return a == b
