"""Training and evaluation input pipelines: a :class:`DatasetIndex` -> a feed for ``model.fit``.

Why worker processes: albumentations runs Python code per image and holds the GIL, so the
usual ``tf.numpy_function``-per-image pattern uses little more than one core however many
tf.data threads it gets (``benchmarks/pipeline.py`` measures it). Here the main process only
decides each epoch's sample order and cuts it into batches of indices; worker processes
(forked by a ``forkserver`` that preloads albumentations and OpenCV, ``spawn`` where there is
none; both safe after TensorFlow is imported, and the workers never import TensorFlow) each
read, decode (or take from the decoded-image cache), augment and resize one whole batch and
write it as uint8 into a shared-memory slot (an anonymous ``memfd``; a pipe where there is
none). The main process does no per-pixel work beyond one copy: batches stay uint8 (the
model scales them, see :func:`augmine.model.densenet.build_densenet`).

- The feed: on the TensorFlow backend a ``tf.data.Dataset`` (``from_generator`` + prefetch,
  see :mod:`augmine.feed.tf_backend`); on JAX and PyTorch a ``keras.utils.PyDataset``. Both give
  ``(images uint8 (B, size, size, 3), labels int32 (B,))``, ``ceil(n / batch_size)``
  batches per epoch, and go straight into ``model.fit`` / ``model.predict``.
- Persistent workers: a training feed starts its workers on its first epoch and keeps them
  for every later epoch (like PyTorch's ``persistent_workers``). They stop on
  :func:`close_feed`, when the feed is garbage-collected, on Ctrl-C (SIGINT; a later epoch
  starts new ones), and at exit; they exit on their own if the main process dies, and
  ignore Ctrl-C themselves. Once an epoch's last tasks are out, the free places in the
  window go to the next epoch's first batches (made from ``(seed, epoch + 1)``, so nothing
  changes but when they are made): the workers keep going through validation, callbacks
  and the start of the next iteration instead of waiting. Each epoch's tasks carry a tag,
  so an epoch abandoned half-way (``break``, an exception) leaves nothing behind that a
  later epoch could receive (the next epoch's early batches are dropped with it).
- Epoch numbers: an epoch counts once all its batches were handed out; an abandoned epoch is
  replayed from its start by the next iteration. ``first_epoch=k`` starts at epoch k
  (exact resume). On the Keras feed the k-th ``__getitem__`` call of an epoch returns the
  epoch's k-th batch whatever the index asked for (the sample order is shuffled already, so
  Keras' own batch shuffle changes nothing).
- Determinism: with a ``seed`` the epoch order and every batch's augmentation seed follow
  from ``(seed, epoch number)``, and batches are yielded in order, so two runs give the
  same batches whatever the worker count. The cost: a slow batch holds back the ones after
  it (a few percent with the default window of 4 batches per worker). Without a seed the
  order is fresh each run and batches are yielded as soon as any worker finishes.
- Oversampling: an ``OversamplingPlan`` (anything with ``.factors`` (C,) >= 1, ``.weak``
  and ``.recipe``) makes each sample of class c appear ``floor(f_c)`` times per epoch plus
  once more for a random ``round(frac(f_c) * n_c)`` of the class's samples (so each sample
  gets its extra copy with probability ``frac(f_c)`` and the epoch length is fixed, which
  Keras progress bars and step-based schedules need). Nothing is dropped. The weak classes
  use ``plan.recipe`` when it is set.
- Class overrides: a recipe's ``classes:`` (see :func:`augmine.augment.recipes.recipe_for_class`)
  give the classes they name their own compose, one per distinct override (the plan's
  recipe wins for its weak classes). A sample of such a class also runs the default
  compose first and drops the result, so the default compose's random stream, and with it
  every other class's images, stay exactly what they are without the overrides (the cost:
  one more augmentation per overridden sample).
- Workers never run the user's script: the main module is left out of the data a new
  worker prepares from, so a script without ``if __name__ == "__main__":`` works and one
  that imports Keras or JAX at its top does not make every worker import them too. (The
  exception: a recipe holding a transform class defined in the script itself; its workers
  must import the script to unpickle it, as multiprocessing always does.) The fork server
  also keeps albumentations from importing PyTorch (:mod:`augmine.feed.worker_boot`).
- Errors: a bad image raises :class:`AugmineError` naming the file inside the worker. tf.data
  turns exceptions from Python generators into ``tf.errors.OpError`` carrying the message;
  wrap ``fit``/loops in :func:`pipeline_errors` to get the ``AugmineError`` back (on every
  backend).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import pickle
import queue
import signal
import sys
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from augmine.core.errors import AugmineError
from augmine.augment.recipes import reseed_compose
from augmine.feed import shards

log = logging.getLogger("augmine")

# Batches in flight per worker (a memory bound on results). 4 rather than 2: measured on 2
# cores with benchmarks/pipeline.py, 95-96% of 2 x plain against 91-95% (two runs each).
WINDOW_PER_WORKER = 4
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
class _Job:
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


class _BatchMaker:
    """Reads, augments and resizes batches of sample indices (in a worker or in-process)."""

    def __init__(self, job: _Job):
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


# --------------------------------------------------------------------------- workers

def _worker_main(job_bytes: bytes, tasks, results, slots=None) -> None:
    """Worker loop: take ``(tag, batch_no, indices, seed, slot)``, put
    ``(tag, batch_no, slot, ok, payload)``.

    ``job_bytes`` is the pickled :class:`_Job` (unpickled here, after the torch import hook is
    lifted, so a recipe that needs ``albumentations.pytorch`` still loads). With ``slots``
    (:class:`_Slots`) the images go into shared-memory slot ``slot`` and the payload is only
    ``(count, labels)``; without, the payload is ``(images, labels)``.
    """
    import multiprocessing as mp

    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent stops us on Ctrl-C
    parent = mp.parent_process()   # the main process (also under the fork server)
    try:
        from augmine.feed import worker_boot   # already loaded by the fork server; under spawn: now

        import albumentations  # noqa: F401 - loaded with the hook in place: no PyTorch
        worker_boot.allow_torch()
        import cv2

        cv2.setNumThreads(0)   # OpenCV's own thread pool slows 64 px work (DESIGN.md)
        make = _BatchMaker(pickle.loads(job_bytes))
        if slots is not None:
            slots.attach()
    except BaseException as exc:  # noqa: BLE001 - tell the parent why, then stop
        results.put((None, -1, None, False, f"pipeline worker could not load the recipe "
                                      f"({type(exc).__name__}: {exc}); define custom transforms "
                                      "in an importable module"))
        return
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
        tag, n, idx, seed, slot = task
        try:
            if slot is None:
                results.put((tag, n, slot, True, make(idx, seed)))
            else:
                _, labels = make(idx, seed, out=slots.array(slot, len(idx)))
                results.put((tag, n, slot, True, (len(idx), labels)))
        except AugmineError as exc:
            results.put((tag, n, slot, False, str(exc)))
        except BaseException as exc:  # noqa: BLE001 - report anything, then keep serving
            results.put((tag, n, slot, False, f"pipeline worker failed on batch {n}: "
                                              f"{type(exc).__name__}: {exc}"))


# Modules the fork server imports once, so that workers start in milliseconds instead of
# about a second each (Python + NumPy + OpenCV + albumentations under spawn). worker_boot
# comes first: it keeps albumentations from importing PyTorch.
FORKSERVER_PRELOAD = ["augmine.feed.worker_boot", "augmine.feed.pipeline", "augmine.data.dataset",
                      "albumentations", "cv2"]
_MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
_launching = threading.local()


def _preparation_data_without_main(name):
    """multiprocessing's ``spawn.get_preparation_data``, minus the main module while this
    thread starts augmine workers (other starts, other threads: unchanged)."""
    from multiprocessing import spawn

    data = spawn._augmine_original_get_preparation_data(name)
    if getattr(_launching, "hide_main", False):
        for key in _MAIN_KEYS:
            data.pop(key, None)
    return data


def _start_without_main(procs) -> None:
    """Start ``procs`` so that the children never import the main script.

    multiprocessing's forkserver and spawn children re-run the parent's ``__main__`` (as
    ``__mp_main__``) before their target: a script importing Keras at its top paid that in
    every worker, and a script without a main guard failed. The preparation data that makes
    them do it comes from ``spawn.get_preparation_data``; it is wrapped once, and drops the
    main module only for starts made inside this function.
    """
    from multiprocessing import spawn

    if not hasattr(spawn, "_augmine_original_get_preparation_data"):
        spawn._augmine_original_get_preparation_data = spawn.get_preparation_data
        spawn.get_preparation_data = _preparation_data_without_main
    _launching.hide_main = True
    try:
        for p in procs:
            p.start()
    finally:
        _launching.hide_main = False


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


_LIVE_GROUPS: "weakref.WeakSet[_WorkerGroup]" = weakref.WeakSet()
_sigint_chain: list = []


def _on_sigint(signum, frame):
    """SIGINT: stop every worker group now (SIGTERM, no waiting), then do what was there before."""
    for group in list(_LIVE_GROUPS):
        group.terminate_now()
    previous = _sigint_chain[0] if _sigint_chain else signal.default_int_handler
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        raise KeyboardInterrupt


def _install_sigint_hook() -> None:
    """Route Ctrl-C through :func:`_on_sigint` (main thread only; once; keeps the old handler)."""
    if _sigint_chain or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN or previous is None:
        return            # Ctrl-C is ignored (or handled outside Python): leave it alone
    _sigint_chain.append(previous)
    signal.signal(signal.SIGINT, _on_sigint)


def _fd_in_child(dup) -> int:
    return dup.detach()


class _Slots:
    """Batch-sized slots in one anonymous shared-memory file (``memfd``) that the workers write
    finished batches into: the main process then reads a batch with one copy, instead of
    receiving, unpickling and copying it through a pipe (measured: about 30 us of main-process
    time per 64 px image, 9% of a worker's work, on the two cores the workers need).

    The file has no name, so nothing is left behind when a process dies; it reaches a worker
    as a file descriptor handed over when the worker starts.
    """

    def __init__(self, count: int, batch_size: int, size: int):
        import mmap

        self.count, self.shape = count, (batch_size, size, size, 3)
        self.slot_bytes = int(np.prod(self.shape))
        self.fd = os.memfd_create("augmine-batches", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.ftruncate(self.fd, count * self.slot_bytes)
            self.mm = mmap.mmap(self.fd, count * self.slot_bytes)
        except BaseException:
            os.close(self.fd)
            raise
        self.free = list(range(count))

    def __reduce__(self):   # pickled only while a worker starts: the fd travels with it
        from multiprocessing import reduction

        return (_Slots._in_child, (reduction.DupFd(self.fd), self.count, self.shape))

    @classmethod
    def _in_child(cls, dup, count, shape):
        self = cls.__new__(cls)
        self.fd, self.count, self.shape = _fd_in_child(dup), count, shape
        self.slot_bytes, self.mm, self.free = int(np.prod(shape)), None, []
        return self

    def attach(self) -> None:
        """Map the file (in a worker)."""
        import mmap

        self.mm = mmap.mmap(self.fd, self.count * self.slot_bytes)

    def array(self, slot: int, n: int) -> np.ndarray:
        """Slot ``slot`` as a writable uint8 (n, size, size, 3) view."""
        return np.frombuffer(self.mm, np.uint8, count=self.slot_bytes,
                             offset=slot * self.slot_bytes).reshape(self.shape)[:n]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.mm.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _make_slots(count: int, batch_size: int, size: int):
    """:class:`_Slots`, or None where there is no ``memfd`` (not Linux) or it fails."""
    if not hasattr(os, "memfd_create"):
        return None
    try:
        return _Slots(count, batch_size, size)
    except OSError as exc:
        log.info("no shared-memory batch slots (%s); batches go through a pipe", exc)
        return None


class _WorkerGroup:
    """A few persistent worker processes fed through one task queue and one result queue.

    Hand-written over ``multiprocessing.Process`` + queues because ``multiprocessing.Pool``
    hangs forever when a worker is killed (its task is silently lost) and its ``imap`` has no
    back-pressure, and ``concurrent.futures.ProcessPoolExecutor`` cannot stop running
    workers before Python 3.14.
    """

    def __init__(self, job_bytes: bytes, workers: int, hide_main: bool = True,
                 slot_shape: tuple[int, int] | None = None):
        ctx = _mp_context()
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        # Slots for the window of every worker plus one batch each, so that tasks of an
        # abandoned epoch still being worked on do not hold back the next epoch.
        self.slots = (_make_slots((WINDOW_PER_WORKER + 1) * workers, *slot_shape)
                      if slot_shape else None)
        self.procs = [ctx.Process(target=_worker_main, name=f"augmine-pipeline-{i}",
                                  args=(job_bytes, self.tasks, self.results, self.slots),
                                  daemon=True) for i in range(workers)]
        self.closed = False
        self.terminated = False       # SIGTERM sent (Ctrl-C): dying, even if not dead yet
        try:
            if hide_main:
                _start_without_main(self.procs)
            else:
                for p in self.procs:
                    p.start()
        except BaseException:
            self.close(graceful=False)
            raise
        _LIVE_GROUPS.add(self)

    @property
    def alive(self) -> bool:
        return (not self.closed and not self.terminated
                and all(p.exitcode is None for p in self.procs))

    def can_put(self) -> bool:
        return self.slots is None or bool(self.slots.free)

    def put(self, tag: int, n: int, idx: np.ndarray, seed) -> None:
        """Queue batch ``n`` of epoch ``tag`` (a slot must be free: :meth:`can_put`)."""
        slot = self.slots.free.pop() if self.slots is not None else None
        self.tasks.put((tag, n, idx, seed, slot))

    def get(self) -> tuple:
        """The next ``(tag, batch_no, ok, payload)``, payload ``(images, labels)`` or an error
        text; AugmineError if a worker died."""
        while True:
            try:
                tag, n, slot, ok, payload = self.results.get(timeout=_POLL_S)
            except queue.Empty:
                for p in self.procs:
                    if p.exitcode is not None:
                        why = " (killed: out of memory?)" if p.exitcode == -9 else ""
                        raise AugmineError(
                            f"pipeline worker {p.name} stopped with exit code {p.exitcode}{why}; "
                            "use fewer workers or a smaller batch size") from None
                continue
            if slot is not None:           # copy the batch out and give the slot back
                if ok:
                    count, labels = payload
                    payload = (self.slots.array(slot, count).copy(), labels)
                self.slots.free.append(slot)
            return tag, n, ok, payload

    def drop_pending(self) -> None:
        """Take back the tasks no worker has started (their epoch was abandoned)."""
        with contextlib.suppress(queue.Empty, OSError, ValueError):
            while True:
                slot = self.tasks.get_nowait()[-1]
                if slot is not None:
                    self.slots.free.append(slot)

    def terminate_now(self) -> None:
        """Send SIGTERM to every worker without waiting (safe inside a signal handler)."""
        self.terminated = True
        for p in self.procs:
            with contextlib.suppress(Exception):
                if p.pid is not None and p.exitcode is None:
                    p.terminate()

    def close(self, graceful: bool = True) -> None:
        """Stop the workers: ask them to exit (graceful), then terminate what is left. Idempotent."""
        if self.closed:
            return
        self.closed = True
        _LIVE_GROUPS.discard(self)
        if graceful:
            self.drop_pending()
            with contextlib.suppress(Exception):
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
        if self.slots is not None:
            self.slots.close()


class _Epoch:
    """One epoch's task list and its batches that arrived but were not handed out yet."""

    def __init__(self, tasks: list, epoch: int, tag: int):
        self.tasks, self.epoch, self.tag = tasks, epoch, tag
        self.submitted = self.served = 0
        self.ready: dict = {}         # batch_no -> (ok, batch or error text)

    @property
    def done(self) -> bool:
        return self.served >= len(self.tasks)


class _TrainFeed:
    """The engine behind one ``train_dataset``: its job, epoch counter and persistent workers.

    Thread-safe: tf.data calls the generator from its own threads, and an abandoned
    iterator's thread may still be running when the next epoch starts.
    """

    def __init__(self, job: _Job, factors, batch_size: int, seed, workers: int,
                 first_epoch: int, num_batches: int, shard=None):
        self.job, self.factors, self.batch_size, self.seed = job, factors, batch_size, seed
        self.shard = shard
        self.workers = min(workers, max(1, num_batches)) if workers else 0
        self.ordered = seed is not None
        self.epoch = int(first_epoch)
        self.num_batches = num_batches
        self.group: _WorkerGroup | None = None
        self.maker = _BatchMaker(job) if workers == 0 else None
        self.active: _Epoch | None = None
        self.upcoming: _Epoch | None = None   # the next epoch, started early (see advance)
        self._tags = itertools.count()
        self._lock = threading.RLock()
        self._job_bytes: bytes | None = None

    def epoch_tasks(self, epoch: int) -> list:
        """``[(batch_no, indices, seed or None), ...]`` of ``epoch``, from ``(seed, epoch)``."""
        rng = np.random.default_rng(None if self.seed is None else [int(self.seed), int(epoch)])
        order = epoch_order(self.job.labels, self.factors, rng)
        batches = shards.shard_batches(order, self.batch_size, self.shard)
        seeds = (shards.shard_seeds(rng.integers(0, 2**62, -(-len(order) // self.batch_size)),
                                    self.shard) if self.seed is not None
                 else [None] * len(batches))
        return [(k, idx, seeds[k]) for k, idx in enumerate(batches)]

    def _ensure_workers(self) -> None:
        if not self.workers or (self.group is not None and self.group.alive):
            return
        if self.group is not None:          # stopped by Ctrl-C or a dead worker: start anew
            self.group.close(graceful=False)
            self.upcoming = None            # its tasks went with the old workers
        if self._job_bytes is None:
            self._job_bytes = pickle.dumps(self.job, protocol=pickle.HIGHEST_PROTOCOL)
        # A recipe whose classes live in the user's script needs that script in the workers.
        hide_main = b"__main__" not in pickle.dumps(self.job.composes)
        self.group = _WorkerGroup(self._job_bytes, self.workers, hide_main=hide_main,
                                  slot_shape=(self.batch_size, self.job.size))

    def begin(self) -> _Epoch:
        """Start the current epoch (replacing an abandoned one) and return it; the batches
        the workers already made for it at the end of the previous epoch are kept."""
        with self._lock:
            self.abandon()
            self._ensure_workers()
            up, self.upcoming = self.upcoming, None
            if up is not None and up.epoch == self.epoch and self.group is not None:
                self.active = up
            else:
                self.active = _Epoch(self.epoch_tasks(self.epoch), self.epoch, next(self._tags))
            return self.active

    def advance(self, ep: _Epoch) -> tuple[np.ndarray, np.ndarray]:
        """The next batch of ``ep``; the epoch counter moves on when its last batch is handed out."""
        while True:
            with self._lock:
                if ep is not self.active:
                    raise AugmineError("this epoch of the feed was stopped (close_feed, or a "
                                       "second loop over the same feed started); start a new "
                                       "loop, one at a time per feed")
                if self.group is None:                          # in-process (workers=0)
                    _, idx, seed = ep.tasks[ep.served]
                    ok, payload = True, self.maker(idx, seed)
                    break
                self._submit(ep)
                key = ep.served if self.ordered else next(iter(ep.ready), None)
                if key in ep.ready:
                    ok, payload = ep.ready.pop(key)
                    break
                try:
                    tag, n, ok, payload = self.group.get()
                except AugmineError:
                    self.close()
                    raise
                if tag is None or tag == ep.tag:
                    ep.ready[n] = (ok, payload)
                elif self.upcoming is not None and tag == self.upcoming.tag:
                    self.upcoming.ready[n] = (ok, payload)
                # else: left over from an abandoned epoch
        if not ok:
            raise AugmineError(payload)
        with self._lock:
            ep.served += 1
            if self.group is not None and self.active is ep:
                self._submit(ep)             # a free window place goes to work at once
            if ep.done and self.active is ep:
                self.epoch = ep.epoch + 1
                self.active = None
        return payload

    def abandon(self, ep: _Epoch | None = None) -> None:
        """Drop the unfinished current epoch (only if it is ``ep``, when given); its queued
        tasks are taken back and its late results are ignored."""
        with self._lock:
            if self.active is None or (ep is not None and self.active is not ep):
                return
            self.active = self.upcoming = None   # the next epoch's early batches go too:
            if self.group is not None and not self.group.closed:   # this one is replayed
                self.group.drop_pending()

    def _submit(self, ep: _Epoch) -> None:
        """Queue tasks of ``ep`` while fewer than the window are in flight; once all of them
        are queued, fill the window with the next epoch's first tasks, so the workers do not
        wait through the epoch's end (validation, callbacks, a new iterator)."""
        up = self.upcoming                  # its batches count until served, made or not
        room = (WINDOW_PER_WORKER * len(self.group.procs) - (ep.submitted - ep.served)
                - (up.submitted if up is not None else 0))
        room -= self._queue(ep, room)
        if room <= 0 or ep.submitted < len(ep.tasks):
            return
        if up is None:
            up = self.upcoming = _Epoch(self.epoch_tasks(ep.epoch + 1), ep.epoch + 1,
                                        next(self._tags))
        self._queue(up, room)

    def _queue(self, ep: _Epoch, room: int) -> int:
        """Queue up to ``room`` more tasks of ``ep`` while slots are free; returns how many."""
        queued = 0
        while queued < room and ep.submitted < len(ep.tasks) and self.group.can_put():
            k, idx, seed = ep.tasks[ep.submitted]
            self.group.put(ep.tag, k, idx, seed)
            ep.submitted += 1
            queued += 1
        return queued

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch of the current epoch, starting one when none is running."""
        with self._lock:
            ep = self.active if self.active is not None else self.begin()
        return self.advance(ep)

    def iterate_epoch(self):
        """A generator over one whole epoch (what each tf.data iteration runs)."""
        ep = self.begin()
        try:
            while not ep.done:
                yield self.advance(ep)
        finally:
            self.abandon(ep)

    def close(self) -> None:
        """Stop the workers (a later epoch starts new ones). Idempotent."""
        with self._lock:
            self.active = self.upcoming = None
            group, self.group = self.group, None
        if group is not None:
            group.close()


# --------------------------------------------------------------------------- cache

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


def _prepare_cache(cache, paths: Sequence[str], owner, presize: int | None = None) -> str | None:
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


# --------------------------------------------------------------------------- datasets

def _compose_for(recipe, size: int):
    """An albumentations Compose for ``recipe`` (Recipe, path or name; a Compose is used as is)."""
    from albumentations.core.composition import BaseCompose

    if isinstance(recipe, BaseCompose):
        return recipe
    from augmine.augment.recipes import build_compose

    return build_compose(recipe, size)


def _add_class_composes(index, recipe, size: int, composes: list,
                        recipe_of_class: np.ndarray) -> int | None:
    """Append one compose per distinct class override of ``recipe`` (a Recipe) to
    ``composes`` and point its classes at it in ``recipe_of_class`` (C,); classes already on
    another compose (the plan's weak classes) keep it. Returns the first override's index
    (None when no class has an effective override)."""
    from augmine.augment.recipes import build_compose, class_overrides, recipe_for_class

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


def default_workers() -> int:
    """Worker processes used when ``workers=None``: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def check_batch_args(size, batch_size) -> tuple[int, int]:
    """``(size, batch_size)`` as ints; :class:`AugmineError` unless both are positive."""
    if int(size) < 1:
        raise AugmineError(f"image size {size}: use a positive size such as 16, 32 or 64")
    if int(batch_size) < 1:
        raise AugmineError(f"batch size {batch_size}: use a positive batch size")
    return int(size), int(batch_size)


class _EvalFeed:
    """The engine behind one ``eval_dataset``: batch ``i`` in file order, in this process."""

    def __init__(self, job: _Job, batch_size: int):
        self.job, self.batch_size = job, batch_size
        self.maker = _BatchMaker(job)
        self.num_batches = -(-len(job.paths) // batch_size)

    def batch(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= i < self.num_batches:
            raise IndexError(f"batch {i} of {self.num_batches}")
        return self.maker(np.arange(i * self.batch_size,
                                    min((i + 1) * self.batch_size, len(self.job.paths))), None)

    def iterate_epoch(self):
        for i in range(self.num_batches):
            yield self.batch(i)

    def close(self) -> None:
        """Nothing runs in the background for evaluation."""


_keras_feed_class = None


def _keras_feed(core):
    """A ``keras.utils.PyDataset`` over ``core`` (a _TrainFeed or _EvalFeed), for JAX/PyTorch."""
    global _keras_feed_class
    if _keras_feed_class is None:
        from augmine.core.runtime import import_keras

        keras = import_keras()

        class KerasFeed(keras.utils.PyDataset):
            """augmine's feed for ``model.fit``/``predict`` on any backend: numpy batches
            ``(images uint8 (B, S, S, 3), labels int32 (B,))``; ``close_feed`` stops its workers."""

            def __init__(self, core):
                super().__init__(workers=1, use_multiprocessing=False)
                self._augmine_feed = core

            def __len__(self):
                return self._augmine_feed.num_batches

            def __getitem__(self, index):
                core = self._augmine_feed
                if isinstance(core, _EvalFeed):
                    return core.batch(int(index))
                if not 0 <= int(index) < core.num_batches:
                    raise IndexError(f"batch {index} of {core.num_batches}")
                return core.next_batch()     # the epoch's next batch (order is shuffled already)

            def __iter__(self):
                # A plain loop reads one whole epoch; one abandoned half-way (``break``) is
                # replayed from its start by the next loop, as on the tf.data feed.
                self.on_epoch_begin()
                for i in range(len(self)):
                    yield self[i]

            def on_epoch_begin(self):
                if isinstance(self._augmine_feed, _TrainFeed):
                    self._augmine_feed.abandon()    # a half-read epoch is replayed, not continued

            def on_epoch_end(self):
                self.on_epoch_begin()

        _keras_feed_class = KerasFeed
    return _keras_feed_class(core)


def _tf_generator(core_ref):
    def generate():
        core = core_ref()
        if core is not None:
            yield from core.iterate_epoch()
    return generate


def _make_feed(core, size: int):
    """The backend's feed over ``core``; ``close_feed``, GC and exit stop its workers."""
    from augmine.core.runtime import keras_backend

    if keras_backend() == "tensorflow":
        from augmine.feed import tf_backend

        # The generator holds the engine weakly: the dataset owns it, so dropping the dataset
        # frees the engine and its workers.
        feed = tf_backend.generator_dataset(_tf_generator(weakref.ref(core)), size,
                                            core.num_batches)
        feed._augmine_feed = core
    else:
        feed = _keras_feed(core)
    weakref.finalize(feed, core.close)        # also runs at exit
    return feed


def train_dataset(index, recipe, size: int, batch_size: int, plan=None, seed: int | None = None,
                  workers: int | None = None, cache=None, split: str = "train",
                  first_epoch: int = 0, presize: bool = False, shard=None):
    """The training feed: one shuffled, augmented epoch per iteration.

    ``index``: DatasetIndex; ``recipe``: Recipe, recipe path or name (``augmine.augment.recipes``), or
    an albumentations Compose; a recipe's class overrides (``classes:``) apply per sample, to
    the classes the plan's recipe does not cover; ``size``: output side in px; ``plan``: OversamplingPlan or None;
    ``seed``: int for reproducible batches (same seed, same batches, any worker count) or None;
    ``workers``: worker processes (None = all cores, 0 = in this process, for debugging);
    ``cache``: None, True/"memory" or a ``.npy`` path (decoded images, see ``_prepare_cache``);
    ``first_epoch``: the epoch number the first iteration uses (order and seeds: exact
    resume); ``presize``: shrink every source image to ``size`` px (shorter side, INTER_AREA)
    once, before the recipe (in the cache when there is one), so small phases run the recipe
    on small images: much cheaper, slightly different augmentation (crops lose detail);
    ``shard``: a :class:`~augmine.feed.shards.Shard`, this process's part of every epoch in a
    multi-worker run (None: the whole epoch).
    Returns a ``tf.data.Dataset`` (TensorFlow backend) or a ``keras.utils.PyDataset``
    (JAX/PyTorch) of ``(images uint8 (B, size, size, 3), labels int32 (B,))``, last partial
    batch kept, ``ceil(epoch_length / batch_size)`` batches. Workers start on the first
    epoch and serve every later one; :func:`close_feed` stops them.
    """
    size, batch_size = check_batch_args(size, batch_size)
    if int(first_epoch) < 0:
        raise AugmineError(f"first_epoch {first_epoch}: use 0 or a later epoch number")
    sp = index.split(split)
    if len(sp) == 0:
        raise AugmineError(f"{index.root}: split {split!r} has no images")
    factors = _plan_factors(plan, index.num_classes)
    from albumentations.core.composition import BaseCompose

    from augmine.augment.recipes import as_recipe

    recipe = recipe if isinstance(recipe, BaseCompose) else as_recipe(recipe)
    composes = [_compose_for(recipe, size)]
    recipe_of_class = np.zeros(index.num_classes, np.int64)
    strong = getattr(plan, "recipe", None) if plan is not None else None
    if strong:
        composes.append(_compose_for(strong, size))
        recipe_of_class[list(getattr(plan, "weak", []))] = 1
    first_override = None if isinstance(recipe, BaseCompose) else \
        _add_class_composes(index, recipe, size, composes, recipe_of_class)
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise AugmineError(f"workers {workers}: use 0 (in-process) or more")
    length = epoch_length(index, plan, split)
    job = _Job(paths=[str(p) for p in sp.paths], labels=np.asarray(sp.labels, np.int64),
               size=size, composes=composes, recipe_of_class=recipe_of_class,
               seeded=seed is not None, presize=bool(presize), first_override=first_override)
    core = _TrainFeed(job, factors, batch_size, seed, workers, first_epoch,
                      shards.steps_per_epoch(length, batch_size, shard), shard)
    cache_path = _prepare_cache(cache, sp.paths, core, size if presize else None)
    if cache_path is not None:
        job.cache_path, job.presize = cache_path, False     # the cache holds presized images
        core.maker = _BatchMaker(job) if workers == 0 else None
    if workers:
        _install_sigint_hook()
    return _make_feed(core, size)


def eval_dataset(index, size: int, batch_size: int, split: str = "val"):
    """The evaluation feed: no augmentation, file order kept, resized to ``size``.

    Labels line up with ``index.split(split).labels``. Decoding and resizing (OpenCV,
    ``A.Resize`` as a recipe's final resize) run in this process: at 20k+ images/s per core
    they are cheap next to a model's forward pass. Batches are ``(images uint8 (B, size,
    size, 3), labels int32 (B,))``, the last one partial; a ``tf.data.Dataset`` on
    TensorFlow, a ``keras.utils.PyDataset`` on JAX/PyTorch (as :func:`train_dataset`).
    """
    import albumentations as A

    size, batch_size = check_batch_args(size, batch_size)
    sp = index.split(split)
    job = _Job(paths=[str(p) for p in sp.paths], labels=np.asarray(sp.labels, np.int64),
               size=size, composes=[A.Compose([A.Resize(size, size)])],
               recipe_of_class=np.zeros(index.num_classes, np.int64), seeded=True)
    return _make_feed(_EvalFeed(job, batch_size), size)


def close_feed(feed) -> None:
    """Stop the worker processes of a feed from :func:`train_dataset` / :func:`eval_dataset` now.

    Idempotent; iterating the feed again starts new workers. Dropping the feed (garbage
    collection), Ctrl-C and interpreter exit stop them too.
    """
    core = getattr(feed, "_augmine_feed", None)
    if core is None:
        raise AugmineError(f"close_feed: got {type(feed).__name__}, not a feed from "
                           "augmine.feed.pipeline.train_dataset or eval_dataset")
    core.close()


@contextlib.contextmanager
def pipeline_errors():
    """Re-raise a pipeline :class:`AugmineError` however the backend wrapped it.

    Use around ``model.fit(...)``, ``model.predict(...)`` or a loop over a feed from this
    module. On TensorFlow, tf.data wraps it in a ``tf.errors.OpError``; on JAX and PyTorch
    it arrives unchanged.
    """
    try:
        yield
    except AugmineError:
        raise
    except Exception as exc:
        if "tensorflow" in sys.modules:
            from augmine.feed import tf_backend

            err = tf_backend.augmine_error_from(exc)
            if err is not None:
                raise err from exc
        raise
