"""Making one batch: read (or take from the decoded-image cache), augment and resize sample
indices into ``(images uint8 (B, size, size, 3), labels int32 (B,))``; the decoded-image
cache itself.

A :class:`BatchJob` holds everything needed (pickled once per feed, unpickled once per worker
process); a :class:`BatchMaker` runs it, in a worker or in the main process.

- Composes: ``composes[0]`` is the recipe's, ``[1]`` the oversampling plan's for its weak
  classes (when it has a recipe), then one per distinct class override of the recipe
  (``classes:``, see :func:`augmine.augment.recipes.recipe_for_class`; the plan's recipe wins
  for its weak classes). A sample of an overridden class also runs the default compose first
  and drops the result, so the default compose's random stream, and with it every other
  class's images, stay exactly what they are without the overrides (the cost: one more
  augmentation per overridden sample).
- Errors: a bad image raises :class:`AugmineError` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from augmine.augment.compose import reseed_compose
from augmine.core.errors import AugmineError


# =========================================================================== cache
# The decoded-image cache: one uint8 ``(N, H, W, 3)`` ``.npy`` of a split's images, read
# through a memory map by every worker instead of decoding each file each epoch.

log = logging.getLogger("augmine")


def _paths_digest(paths: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(map(str, paths)).encode()).hexdigest()


def _write_cache(target: Path, paths: Sequence[str], presize: int | None = None) -> None:
    from augmine.core import atomic
    from augmine.data.dataset import load_images, read_image

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
        from augmine.data.dataset import read_image

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


# =========================================================================== batches

def _to_size(img: np.ndarray, size: int) -> np.ndarray:
    """Make a recipe's output exactly (size, size, 3) uint8 (guards user-made composes)."""
    import cv2

    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    if img.dtype != np.uint8:
        img = np.clip(img * 255.0 if img.dtype.kind == "f" else img, 0, 255).astype(np.uint8)
    return img


def presized(img: np.ndarray, size: int) -> np.ndarray:
    """``img`` (H, W, C) uint8 shrunk (OpenCV INTER_AREA) so its shorter side is ``size`` px.

    Images whose shorter side is already ``<= size`` come back unchanged. Used by
    ``train_dataset(..., presize=True)``: the recipe then runs on small images.
    """
    import cv2

    h, w = img.shape[:2]
    if min(h, w) <= size:
        return img
    f = size / min(h, w)
    return cv2.resize(img, (max(size, round(w * f)), max(size, round(h * f))),
                      interpolation=cv2.INTER_AREA)


@dataclass
class BatchJob:
    """Everything a worker needs, pickled once per feed and unpickled once per worker."""

    paths: list
    labels: np.ndarray            # (N,) int
    size: int
    composes: list                # albumentations composes; [0] default, [1] weak classes
    recipe_of_class: np.ndarray   # (C,) index into composes
    cache_path: str | None = None
    seeded: bool = True
    presize: bool = False         # shrink each source image to ``size`` before the recipe
    first_override: int | None = None   # composes[first_override:]: class overrides


def _compose_seed(seed: int, k: int, first_override: int | None) -> int:
    """The seed of compose ``k`` for a batch seeded ``seed``: ``2*seed + k`` for the default
    (0) and the plan's (1) composes, as always; a class override's from (seed, k), so it
    repeats no other batch's stream."""
    if first_override is None or k < first_override:
        return (int(seed) << 1) + k
    return int(np.random.SeedSequence([int(seed), k]).generate_state(1, np.uint64)[0])


class BatchMaker:
    """Reads, augments and resizes batches of sample indices (in a worker or in-process)."""

    def __init__(self, job: BatchJob):
        self.job = job
        self.cache = np.load(job.cache_path, mmap_mode="r") if job.cache_path else None
        if not job.seeded:
            for comp in job.composes:
                reseed_compose(comp, None)

    def __call__(self, idx: np.ndarray, seed: int | None,
                 out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(images uint8 (B, size, size, 3), labels int32 (B,))`` for sample indices ``idx``
        (B,); ``out``: where to write the images (a shared-memory slot), else a new array."""
        from augmine.data.dataset import read_image

        job = self.job
        if seed is not None:
            for k, comp in enumerate(job.composes):
                reseed_compose(comp, _compose_seed(seed, k, job.first_override))
        first_override = len(job.composes) if job.first_override is None else job.first_override
        if out is None:
            out = np.empty((len(idx), job.size, job.size, 3), np.uint8)
        labels = job.labels[idx]
        for j, (i, label) in enumerate(zip(idx, labels)):
            path = job.paths[i]
            img = self.cache[i] if self.cache is not None else read_image(path)
            if job.presize:
                img = presized(img, job.size)
            try:
                k = job.recipe_of_class[label]
                if k >= first_override:     # keep the default stream as without overrides
                    job.composes[0](image=img)
                aug = job.composes[k](image=img)["image"]
                out[j] = _to_size(aug, job.size)
            except AugmineError:
                raise
            except Exception as exc:  # an albumentations/OpenCV error: name the image
                raise AugmineError(f"{path}: augmentation failed ({type(exc).__name__}: "
                                   f"{exc}); check the recipe or replace the image")
        return out, labels.astype(np.int32)


def compose_for(recipe, size: int):
    """An albumentations Compose for ``recipe`` (Recipe, path or name; a Compose is used as is)."""
    from albumentations.core.composition import BaseCompose

    if isinstance(recipe, BaseCompose):
        return recipe
    from augmine.augment.compose import build_compose

    return build_compose(recipe, size)


def add_class_composes(index, recipe, size: int, composes: list,
                        recipe_of_class: np.ndarray) -> int | None:
    """Append one compose per distinct class override of ``recipe`` (a Recipe) to
    ``composes`` and point its classes at it in ``recipe_of_class`` (C,); classes already on
    another compose (the plan's weak classes) keep it. Returns the first override's index
    (None when no class has an effective override)."""
    from augmine.augment.compose import build_compose
    from augmine.augment.compose import class_overrides, recipe_for_class

    first = len(composes)
    by_override: dict[tuple, int] = {}
    for label, override in class_overrides(recipe, index.class_ids, index.class_names).items():
        key = (tuple(sorted(set(override.get("without") or ()))),
               float(override.get("strength", 1.0)))
        if key == ((), 1.0) or recipe_of_class[label] != 0:
            continue
        if key not in by_override:
            by_override[key] = len(composes)
            composes.append(build_compose(recipe_for_class(recipe, override), size))
        recipe_of_class[label] = by_override[key]
    return first if by_override else None
