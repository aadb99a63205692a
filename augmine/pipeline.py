"""Training and evaluation input pipelines: a :class:`DatasetIndex` -> ``tf.data.Dataset``.

Why worker processes: albumentations runs Python code per image and holds the GIL, so the
usual ``tf.numpy_function``-per-image pattern uses little more than one core however many
tf.data threads it gets (``benchmarks/pipeline.py`` measures it). Here the main process only
decides each epoch's sample order and cuts it into batches of indices; a group of worker
processes (started by a ``forkserver`` that preloads albumentations and OpenCV, ``spawn``
where there is none; both safe after TensorFlow is imported, and the workers never import
TensorFlow) each reads, decodes (or takes from the decoded-image cache), augments and
resizes one whole batch and sends back a uint8 array. ``tf.data.Dataset.from_generator``
wraps the stream, converts it to float32 in [0, 1] and prefetches.

- Determinism: with a ``seed`` the epoch order and every batch's augmentation seed follow
  from ``(seed, epoch number)``, and batches are yielded in order, so two runs give the
  same batches whatever the worker count. The cost: a slow batch holds back the ones after
  it (a few percent with the default window of 2 batches per worker). Without a seed the
  order is fresh each run and batches are yielded as soon as any worker finishes.
- Oversampling: an ``OversamplingPlan`` (anything with ``.factors`` (C,) >= 1, ``.weak``
  and ``.recipe``) makes each sample of class c appear ``floor(f_c)`` times per epoch plus
  once more for a random ``round(frac(f_c) * n_c)`` of the class's samples (so each sample
  gets its extra copy with probability ``frac(f_c)`` and the epoch length is fixed, which
  Keras progress bars and step-based schedules need). Nothing is dropped. The weak classes
  use ``plan.recipe`` when it is set.
- Worker lifetime: one group per epoch (per iterator). It is stopped when the epoch ends,
  when the iterator is dropped (Keras stops on Ctrl-C, ``break`` in a loop), or when a worker
  fails; workers ignore Ctrl-C themselves, exit on their own if the main process dies, and
  are daemonic. With the fork server a group starts in well under 0.1 s (about 1 s per
  worker under ``spawn``); the server itself is one idle process that exits with Python.
- Errors: a bad image raises :class:`AugmineError` naming the file inside the worker. tf.data
  turns exceptions from Python generators into ``tf.errors.OpError`` carrying the message;
  wrap ``fit``/loops in :func:`pipeline_errors` to get the ``AugmineError`` back.

The fork server does not import the main script. Where only ``spawn`` exists, scripts must
keep their top-level code under ``if __name__ == "__main__":`` (spawn re-imports ``__main__``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import re
import signal
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import AugmineError
from .recipes import reseed_compose

log = logging.getLogger("augmine")

WINDOW_PER_WORKER = 2          # batches in flight per worker (memory bound on results)
_POLL_S = 1.0                  # how often a waiting side checks that the other is alive


# --------------------------------------------------------------------------- epoch order

def _plan_factors(plan: Any, num_classes: int) -> np.ndarray | None:
    if plan is None:
        return None
    factors = np.asarray(getattr(plan, "factors", None), dtype=np.float64).reshape(-1)
    if factors.shape != (num_classes,):
        raise AugmineError(f"oversampling plan has {factors.size} factors but the dataset has "
                           f"{num_classes} classes; build the plan from this dataset's report")
    if not np.all(np.isfinite(factors)) or np.any(factors < 1.0):
        raise AugmineError("oversampling plan: every factor must be a number >= 1 "
                           f"(got min {np.nanmin(factors)}); a plan never drops samples")
    return factors


def _extra_counts(counts: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(C,) how many samples of each class get one copy beyond ``floor(f_c)``."""
    return np.round((factors - np.floor(factors)) * counts).astype(np.int64)


def epoch_order(labels: np.ndarray, factors: np.ndarray | None = None,
                rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Sample indices of one training epoch, shuffled.

    ``labels`` (N,) int; ``factors`` (C,) float >= 1 or None (each sample once). Each sample
    of class c appears ``floor(f_c)`` times plus once more for ``round(frac(f_c) * n_c)``
    randomly chosen samples of the class. Returns (M,) int64 indices into ``labels``.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(rng)
    n = len(labels)
    if factors is None:
        return rng.permutation(n)
    counts = np.bincount(labels, minlength=len(factors))
    parts = [np.repeat(np.arange(n), np.floor(factors).astype(np.int64)[labels])]
    for c, k in enumerate(_extra_counts(counts, factors)):
        if k:
            parts.append(rng.choice(np.flatnonzero(labels == c), int(k), replace=False))
    return rng.permutation(np.concatenate(parts))


def epoch_length(index, plan=None, split: str = "train") -> int:
    """Number of samples one training epoch of ``train_dataset(index, ..., plan)`` yields."""
    labels = index.split(split).labels
    factors = _plan_factors(plan, index.num_classes)
    if factors is None:
        return len(labels)
    counts = np.bincount(labels, minlength=index.num_classes)
    return int((np.floor(factors).astype(np.int64) * counts).sum()
               + _extra_counts(counts, factors).sum())


# --------------------------------------------------------------------------- augmentation

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


@dataclass
class _Job:
    """Everything a worker needs, pickled once per worker when it starts."""

    paths: list
    labels: np.ndarray            # (N,) int
    size: int
    composes: list                # albumentations composes; [0] default, [1] weak classes
    recipe_of_class: np.ndarray   # (C,) index into composes
    cache_path: str | None = None
    seeded: bool = True


class _BatchMaker:
    """Reads, augments and resizes batches of sample indices (in a worker or in-process)."""

    def __init__(self, job: _Job):
        self.job = job
        self.cache = np.load(job.cache_path, mmap_mode="r") if job.cache_path else None
        if not job.seeded:
            for comp in job.composes:
                reseed_compose(comp, None)

    def __call__(self, idx: np.ndarray, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
        from .dataset import read_image

        job = self.job
        if seed is not None:
            for k, comp in enumerate(job.composes):
                reseed_compose(comp, (int(seed) << 1) + k)
        out = np.empty((len(idx), job.size, job.size, 3), np.uint8)
        labels = job.labels[idx]
        for j, (i, label) in enumerate(zip(idx, labels)):
            path = job.paths[i]
            img = self.cache[i] if self.cache is not None else read_image(path)
            try:
                aug = job.composes[job.recipe_of_class[label]](image=img)["image"]
                out[j] = _to_size(aug, job.size)
            except AugmineError:
                raise
            except Exception as exc:  # an albumentations/OpenCV error: name the image
                raise AugmineError(f"{path}: augmentation failed ({type(exc).__name__}: "
                                   f"{exc}); check the recipe or replace the image")
        return out, labels.astype(np.int32)


# --------------------------------------------------------------------------- workers

def _worker_main(job: _Job, tasks, results) -> None:
    """Worker loop: take ``(batch_no, indices, seed)``, put ``(batch_no, ok, payload)``."""
    import multiprocessing as mp

    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent stops us on Ctrl-C
    parent = mp.parent_process()   # the main process (also under the fork server)
    import cv2

    cv2.setNumThreads(0)   # OpenCV's own thread pool slows 64 px work (DESIGN.md)
    make = _BatchMaker(job)
    while True:
        try:
            task = tasks.get(timeout=_POLL_S)
        except queue.Empty:
            if parent is not None and not parent.is_alive():   # main gone: never linger
                results.cancel_join_thread()
                return
            continue
        if task is None:
            return
        n, idx, seed = task
        try:
            results.put((n, True, make(idx, seed)))
        except AugmineError as exc:
            results.put((n, False, str(exc)))
        except BaseException as exc:  # noqa: BLE001 - report anything, then keep serving
            results.put((n, False, f"pipeline worker failed on batch {n}: "
                                   f"{type(exc).__name__}: {exc}"))


# Modules the fork server imports once, so that each epoch's workers start in milliseconds
# instead of about a second each (Python + NumPy + OpenCV + albumentations under spawn).
FORKSERVER_PRELOAD = ["augmine.pipeline", "augmine.dataset", "albumentations", "cv2"]


def _mp_context():
    """``forkserver`` where available (a clean, TensorFlow-free server forks the workers), else
    ``spawn``; never plain ``fork``, which is unsafe once TensorFlow has started threads."""
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    from multiprocessing import forkserver

    if getattr(forkserver._forkserver, "_forkserver_pid", None) is None:  # not started yet
        ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
    return ctx


class _WorkerGroup:
    """A few worker processes with a bounded window of batches in flight.

    Hand-written over ``multiprocessing.Process`` + queues because ``multiprocessing.Pool``
    hangs forever when a worker is killed (its task is silently lost) and its ``imap`` has no
    back-pressure, and ``concurrent.futures.ProcessPoolExecutor`` cannot stop running
    workers before Python 3.14.
    """

    def __init__(self, job: _Job, workers: int):
        ctx = _mp_context()
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        self.procs = [ctx.Process(target=_worker_main, name=f"augmine-pipeline-{i}",
                                  args=(job, self.tasks, self.results),
                                  daemon=True) for i in range(workers)]
        try:
            for p in self.procs:
                p.start()
        except BaseException:
            self.close(graceful=False)
            raise

    def _get(self):
        while True:
            try:
                return self.results.get(timeout=_POLL_S)
            except queue.Empty:
                for p in self.procs:
                    if p.exitcode is not None:
                        why = " (killed: out of memory?)" if p.exitcode == -9 else ""
                        raise AugmineError(
                            f"pipeline worker {p.name} stopped with exit code {p.exitcode}{why}; "
                            "use fewer workers or a smaller batch size")

    def run(self, tasks: Sequence[tuple], ordered: bool) -> Iterator:
        """Yield the results of ``tasks`` (in task order when ``ordered``)."""
        window = WINDOW_PER_WORKER * len(self.procs)
        submitted, outstanding, ready, next_out = 0, 0, {}, 0
        while True:
            while outstanding < window and submitted < len(tasks):
                self.tasks.put(tasks[submitted])
                submitted += 1
                outstanding += 1
            if outstanding == 0:
                return
            if ordered and next_out in ready:
                outstanding -= 1
                yield ready.pop(next_out)
                next_out += 1
                continue
            n, ok, payload = self._get()
            if not ok:
                raise AugmineError(payload)
            if ordered:
                ready[n] = payload
            else:
                outstanding -= 1
                yield payload

    def close(self, graceful: bool = True) -> None:
        """Stop the workers: ask them to exit (graceful), then terminate what is left."""
        if graceful:
            for _ in self.procs:
                self.tasks.put(None)
            for p in self.procs:
                if p.pid is not None:
                    p.join(timeout=2.0)
        for p in self.procs:
            if p.pid is not None and p.exitcode is None:
                p.terminate()
        for p in self.procs:
            if p.pid is not None:
                p.join(timeout=2.0)
                if p.exitcode is None:
                    p.kill()
                    p.join(timeout=1.0)
        for q in (self.tasks, self.results):
            q.cancel_join_thread()
            q.close()


def _stream(job: _Job, tasks: list, workers: int, ordered: bool) -> Iterator:
    """Batches for ``tasks``: in this process (``workers == 0``) or in a worker group."""
    if workers == 0:
        make = _BatchMaker(job)
        for _, idx, seed in tasks:
            yield make(idx, seed)
        return
    group = _WorkerGroup(job, min(workers, max(1, len(tasks))))
    finished = False
    try:
        yield from group.run(tasks, ordered)
        finished = True
    finally:   # also runs when the consumer drops the generator (GeneratorExit)
        group.close(graceful=finished)


# --------------------------------------------------------------------------- cache

def _paths_digest(paths: Sequence[str]) -> str:
    return hashlib.sha1("\n".join(map(str, paths)).encode()).hexdigest()


def _write_cache(target: Path, paths: Sequence[str]) -> None:
    from . import atomic
    from .dataset import load_images, read_image

    first = read_image(paths[0])
    shape = (len(paths), *first.shape)
    with atomic.atomic_path(target, suffix=".npy") as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        chunk = 2048
        for start in range(0, len(paths), chunk):
            part = paths[start:start + chunk]
            for j, img in enumerate(load_images(part)):
                if img.shape != first.shape:
                    raise AugmineError(
                        f"{part[j]}: image is {img.shape[1]}x{img.shape[0]} but "
                        f"{paths[0]} is {first.shape[1]}x{first.shape[0]}; the decoded-image "
                        "cache needs images of one size: run without a cache")
                arr[start + j] = img
        arr.flush()
        del arr
    atomic.write_json(Path(str(target) + ".json"),
                      {"count": len(paths), "shape": list(shape), "paths_sha1": _paths_digest(paths)})


def _prepare_cache(cache, paths: Sequence[str], owner) -> str | None:
    """Path of a decoded uint8 (N, H, W, 3) ``.npy`` for ``paths``, built when missing or stale.

    ``cache``: None/False (no cache); True or "memory" (a temporary file in /dev/shm when it
    exists, removed when ``owner`` is garbage-collected or at exit); or a ``.npy`` path kept
    between runs (a ``<path>.json`` beside it records which images it holds).
    """
    if cache is None or cache is False:
        return None
    if cache is True or cache == "memory":
        from .dataset import read_image

        need = len(paths) * read_image(paths[0]).nbytes * 1.1
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
            if info.get("count") == len(paths) and info.get("paths_sha1") == _paths_digest(paths):
                return str(target)
            log.info("cache %s holds other images; rebuilding it", target)
    _write_cache(target, paths)
    return str(target)


def _remove_quietly(*paths: str) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            os.remove(p)


# --------------------------------------------------------------------------- datasets

def _compose_for(recipe, size: int):
    """An albumentations Compose for ``recipe`` (Recipe, path or name; a Compose is used as is)."""
    from albumentations.core.composition import BaseCompose

    if isinstance(recipe, BaseCompose):
        return recipe
    from .recipes import build_compose

    return build_compose(recipe, size)


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _check_args(size: int, batch_size: int) -> None:
    if int(size) < 1:
        raise AugmineError(f"image size {size}: use a positive size such as 16, 32 or 64")
    if int(batch_size) < 1:
        raise AugmineError(f"batch size {batch_size}: use a positive batch size")


class _EpochState:
    """Per-dataset state shared by its iterators: epoch counter (and the cache's lifetime)."""

    def __init__(self):
        self.epoch = 0


def _wrap(generator_fn, size: int, num_batches: int):
    from .runtime import import_tensorflow

    tf = import_tensorflow()
    spec = (tf.TensorSpec((None, size, size, 3), tf.uint8), tf.TensorSpec((None,), tf.int32))
    ds = tf.data.Dataset.from_generator(generator_fn, output_signature=spec)
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32) * (1.0 / 255.0), y),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def train_dataset(index, recipe, size: int, batch_size: int, plan=None, seed: int | None = None,
                  workers: int | None = None, cache=None, split: str = "train"):
    """The training pipeline: one shuffled, augmented epoch per iteration.

    ``index``: DatasetIndex; ``recipe``: Recipe, recipe path or name (``augmine.recipes``), or
    an albumentations Compose; ``size``: output side in px; ``plan``: OversamplingPlan or None;
    ``seed``: int for reproducible batches (same seed, same batches, any worker count) or None;
    ``workers``: worker processes (None = all cores, 0 = in this process, for debugging);
    ``cache``: None, True/"memory" or a ``.npy`` path (decoded images, see ``_prepare_cache``).
    Returns a ``tf.data.Dataset`` of ``(images float32 (B, size, size, 3) in [0, 1],
    labels int32 (B,))``, last partial batch kept, ``ceil(epoch_length / batch_size)`` batches.
    """
    _check_args(size, batch_size)
    size, batch_size = int(size), int(batch_size)
    sp = index.split(split)
    if len(sp) == 0:
        raise AugmineError(f"{index.root}: split {split!r} has no images")
    factors = _plan_factors(plan, index.num_classes)
    composes = [_compose_for(recipe, size)]
    recipe_of_class = np.zeros(index.num_classes, np.int64)
    strong = getattr(plan, "recipe", None) if plan is not None else None
    if strong:
        composes.append(_compose_for(strong, size))
        recipe_of_class[list(getattr(plan, "weak", []))] = 1
    workers = _default_workers() if workers is None else int(workers)
    if workers < 0:
        raise AugmineError(f"workers {workers}: use 0 (in-process) or more")
    state = _EpochState()
    job = _Job(paths=[str(p) for p in sp.paths], labels=np.asarray(sp.labels, np.int64),
               size=size, composes=composes, recipe_of_class=recipe_of_class,
               cache_path=_prepare_cache(cache, sp.paths, state), seeded=seed is not None)
    length = epoch_length(index, plan, split)

    def generate():
        epoch = state.epoch
        state.epoch += 1
        rng = np.random.default_rng(None if seed is None else [int(seed), epoch])
        order = epoch_order(job.labels, factors, rng)
        starts = range(0, len(order), batch_size)
        seeds = rng.integers(0, 2**62, len(starts)) if seed is not None else [None] * len(starts)
        tasks = [(k, order[s:s + batch_size], seeds[k]) for k, s in enumerate(starts)]
        yield from _stream(job, tasks, workers, ordered=seed is not None)

    ds = _wrap(generate, size, -(-length // batch_size))
    ds._augmine_state = state      # keeps a temporary cache alive as long as the dataset
    return ds


def eval_dataset(index, size: int, batch_size: int, split: str = "val"):
    """The evaluation pipeline: no augmentation, file order kept, resized to ``size``.

    Labels line up with ``index.split(split).labels``. Decoding and resizing (OpenCV,
    ``A.Resize`` as a recipe's final resize) run in this process: at 20k+ images/s per core
    they are cheap next to a model's forward pass. Same element spec as :func:`train_dataset`.
    """
    import albumentations as A

    _check_args(size, batch_size)
    size, batch_size = int(size), int(batch_size)
    sp = index.split(split)
    job = _Job(paths=[str(p) for p in sp.paths], labels=np.asarray(sp.labels, np.int64),
               size=size, composes=[A.Compose([A.Resize(size, size)])],
               recipe_of_class=np.zeros(index.num_classes, np.int64), seeded=True)
    order = np.arange(len(sp))

    def generate():
        tasks = [(k, order[s:s + batch_size], None)
                 for k, s in enumerate(range(0, len(order), batch_size))]
        yield from _stream(job, tasks, 0, ordered=True)

    return _wrap(generate, size, -(-len(sp) // batch_size))


_AUGMINE_IN_TF_ERROR = re.compile(r"AugmineError: (.+)")


@contextlib.contextmanager
def pipeline_errors():
    """Re-raise a pipeline's :class:`AugmineError` that tf.data wrapped in a ``tf.errors.OpError``.

    Use around ``model.fit(...)`` or a loop over a dataset from this module.
    """
    from .runtime import import_tensorflow

    tf = import_tensorflow()
    try:
        yield
    except tf.errors.OpError as exc:
        match = _AUGMINE_IN_TF_ERROR.search(exc.message or "")
        if match:
            raise AugmineError(match.group(1).strip()) from exc
        raise
