"""Atomic file writes: a reader (or a resumed run) never sees a half-written file.

Each helper writes to a temporary file in the destination folder, flushes it to disk
and renames it over the target with :func:`os.replace`, which is atomic on POSIX and
Windows. A run killed mid-write leaves the previous version intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    Use it for writers that want a file name (``np.save``, ``fig.savefig``,
    ``model.save``). ``suffix`` defaults to the target's own suffix, because some writers
    choose the format from it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=target.suffix if suffix is None else suffix,
        dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically and return the target path."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``target`` atomically and return the target path."""
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``target`` atomically and return the target path."""
    return write_text(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")
