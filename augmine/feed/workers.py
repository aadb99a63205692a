"""The worker processes: a group of persistent processes that make batches from a task queue.

Why processes: albumentations runs Python code per image and holds the GIL, so the usual
``tf.numpy_function``-per-image pattern uses little more than one core however many tf.data
threads it gets (``benchmarks/pipeline.py`` measures it). Workers are forked by a
``forkserver`` that preloads albumentations and OpenCV (``spawn`` where there is none; both
safe after TensorFlow is imported, and the workers never import TensorFlow); each makes
whole batches (:class:`augmine.feed.batches.BatchMaker`) and writes them as uint8 into a
shared-memory slot (:mod:`augmine.feed.slots`; a pipe where there is none).

- Stopping: a group stops on :meth:`WorkerGroup.close`, on Ctrl-C (SIGINT, see
  :func:`install_sigint_hook`) and at exit; workers exit on their own if the main process
  dies, and ignore Ctrl-C themselves.
- Workers never run the user's script: the main module is left out of the data a new
  worker prepares from, so a script without ``if __name__ == "__main__":`` works and one
  that imports Keras or JAX at its top does not make every worker import them too. (The
  exception: a recipe holding a transform class defined in the script itself; its workers
  must import the script to unpickle it, as multiprocessing always does.) The fork server
  also keeps albumentations from importing PyTorch (:mod:`augmine.feed.worker_boot`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import threading
import weakref

import numpy as np

from augmine.core.compat import allow_torch, forkserver_started, require, start_without_main
from augmine.core.errors import AugmineError
from augmine.feed.batches import BatchMaker
from augmine.feed.slots import make_slots

# Batches in flight per worker (a memory bound on results). 4 rather than 2: measured on 2
# cores with benchmarks/pipeline.py, 95-96% of 2 x plain against 91-95% (two runs each).
WINDOW_PER_WORKER = 4
_POLL_S = 1.0                  # how often a waiting side checks that the other is alive


def _worker_main(job_bytes: bytes, tasks, results, slots=None) -> None:
    """Worker loop: take ``(tag, batch_no, indices, seed, slot)``, put
    ``(tag, batch_no, slot, ok, payload)``.

    ``job_bytes`` is the pickled :class:`~augmine.feed.batches.BatchJob` (unpickled here, after
    the torch import hook is lifted, so a recipe that needs ``albumentations.pytorch`` still
    loads). With ``slots`` (:class:`~augmine.feed.slots.Slots`) the images go into
    shared-memory slot ``slot`` and the payload is only ``(count, labels)``; without, the
    payload is ``(images, labels)``.
    """
    import multiprocessing as mp

    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent stops us on Ctrl-C
    parent = mp.parent_process()   # the main process (also under the fork server)
    try:
        from augmine.feed import worker_boot  # noqa: F401 - loaded by the fork server; under spawn: now

        import albumentations  # noqa: F401 - loaded with the hook in place: no PyTorch
        allow_torch()
        import cv2

        cv2.setNumThreads(0)   # OpenCV's own thread pool slows 64 px work (DESIGN.md)
        make = BatchMaker(pickle.loads(job_bytes))
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
FORKSERVER_PRELOAD = ["augmine.feed.worker_boot", "augmine.feed.workers", "augmine.data.dataset",
                      "albumentations", "cv2"]


def _mp_context():
    """``forkserver`` where available (a clean, TensorFlow-free server forks the workers), else
    ``spawn``; never plain ``fork``, which is unsafe once TensorFlow has started threads."""
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    if not forkserver_started():
        ctx.set_forkserver_preload(FORKSERVER_PRELOAD)
    return ctx


_LIVE_GROUPS: "weakref.WeakSet[WorkerGroup]" = weakref.WeakSet()
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


def install_sigint_hook() -> None:
    """Route Ctrl-C through :func:`_on_sigint` (main thread only), which then calls the handler
    in place now; again when another handler replaced it since the last feed started."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is _on_sigint or previous == signal.SIG_IGN or previous is None:
        return            # already routed, or Ctrl-C ignored / handled outside Python
    _sigint_chain[:] = [previous]
    signal.signal(signal.SIGINT, _on_sigint)


def default_workers() -> int:
    """Worker processes used when ``workers=None``: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class WorkerGroup:
    """A few persistent worker processes fed through one task queue and one result queue.

    Hand-written over ``multiprocessing.Process`` + queues because ``multiprocessing.Pool``
    hangs forever when a worker is killed (its task is silently lost) and its ``imap`` has no
    back-pressure, and ``concurrent.futures.ProcessPoolExecutor`` cannot stop running
    workers before Python 3.14.
    """

    def __init__(self, job_bytes: bytes, workers: int, hide_main: bool = True,
                 slot_shape: tuple[int, int] | None = None):
        require("albumentations-without-torch")   # here: the fork server's preload cannot say
        ctx = _mp_context()
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        # Slots for the window of every worker plus one batch each, so that tasks of an
        # abandoned epoch still being worked on do not hold back the next epoch.
        self.slots = (make_slots((WINDOW_PER_WORKER + 1) * workers, *slot_shape)
                      if slot_shape else None)
        self.procs = [ctx.Process(target=_worker_main, name=f"augmine-pipeline-{i}",
                                  args=(job_bytes, self.tasks, self.results, self.slots),
                                  daemon=True) for i in range(workers)]
        self.closed = False
        self.terminated = False       # SIGTERM sent (Ctrl-C): dying, even if not dead yet
        try:
            if hide_main:
                start_without_main(self.procs)
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
