"""The decoded-image cache: one uint8 ``(N, H, W, 3)`` ``.npy`` of a split's images, read
through a memory map by every worker instead of decoding each file each epoch."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np

from augmine.core.errors import AugmineError
from augmine.feed.batches import presized

log = logging.getLogger("augmine")


def _paths_digest(paths: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(map(str, paths)).encode()).hexdigest()


def _write_cache(target: Path, paths: Sequence[str], presize: int | None = None) -> None:
    from augmine.core import atomic
    from augmine.data.images import load_images, read_image

    def prepared(img):
        return presized(img, presize) if presize else img

    first = prepared(read_image(paths[0]))
    shape = (len(paths), *first.shape)
    with atomic.atomic_path(target, suffix=".npy") as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        chunk = 2048
        for start in range(0, len(paths), chunk):
            part = paths[start:start + chunk]
            for j, img in enumerate(load_images(part)):
                img = prepared(img)
                if img.shape != first.shape:
                    raise AugmineError(
                        f"{part[j]}: image is {img.shape[1]}x{img.shape[0]} but "
                        f"{paths[0]} is {first.shape[1]}x{first.shape[0]}; the decoded-image "
                        "cache needs images of one size: run without a cache")
                arr[start + j] = img
        arr.flush()
        del arr
    atomic.write_json(Path(str(target) + ".json"),
                      {"count": len(paths), "shape": list(shape), "paths_sha1": _paths_digest(paths),
                       "presize": presize})


def prepare_cache(cache, paths: Sequence[str], owner, presize: int | None = None) -> str | None:
    """Path of a decoded uint8 (N, H, W, 3) ``.npy`` for ``paths``, built when missing or stale.

    ``presize``: store every image shrunk to that side (see :func:`presized`), or None.
    ``cache``: None/False (no cache); True or "memory" (a temporary file in /dev/shm when it
    exists, removed when ``owner`` is garbage-collected or at exit); or a ``.npy`` path kept
    between runs (a ``<path>.json`` beside it records which images it holds).
    """
    if cache is None or cache is False:
        return None
    if cache is True or cache == "memory":
        from augmine.data.images import read_image

        first = read_image(paths[0])
        need = len(paths) * (presized(first, presize) if presize else first).nbytes * 1.1
        base = None   # /dev/shm only when it has room (containers often give it 64 MB)
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
            import shutil

            base = "/dev/shm" if shutil.disk_usage("/dev/shm").free > need else None
        fd, tmp = tempfile.mkstemp(prefix="augmine-cache-", suffix=".npy", dir=base)
        os.close(fd)
        target = Path(tmp)
        weakref.finalize(owner, _remove_quietly, str(target), str(target) + ".json")
    else:
        target = Path(cache)
        if target.suffix != ".npy":
            raise AugmineError(f"cache {target}: use a file name ending in .npy")
        meta = Path(str(target) + ".json")
        if target.exists() and meta.exists():
            try:
                info = json.loads(meta.read_text())
            except (OSError, ValueError):
                info = {}
            if (info.get("count") == len(paths) and info.get("paths_sha1") == _paths_digest(paths)
                    and info.get("presize") == presize):
                return str(target)
            log.info("cache %s holds other images; rebuilding it", target)
    _write_cache(target, paths, presize)
    return str(target)


def _remove_quietly(*paths: str) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            os.remove(p)
