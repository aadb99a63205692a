"""The engines behind the feeds: :class:`TrainFeed` schedules each training epoch's batches
onto a persistent :class:`~augmine.feed.workers.WorkerGroup`; :class:`EvalFeed` makes
evaluation batches in file order, in this process.

- Persistent workers: a training feed starts its workers on its first epoch and keeps them
  for every later epoch (like PyTorch's ``persistent_workers``); after Ctrl-C or a dead
  worker, the next epoch starts new ones. Once an epoch's last tasks are out, the free
  places in the window (:data:`~augmine.feed.workers.WINDOW_PER_WORKER` batches per worker)
  go to the next epoch's first batches (made from ``(seed, epoch + 1)``, so nothing changes
  but when they are made): the workers keep going through validation, callbacks and the
  start of the next iteration instead of waiting. Each epoch's tasks carry a tag, so an
  epoch abandoned half-way (``break``, an exception) leaves nothing behind that a later
  epoch could receive (the next epoch's early batches are dropped with it).
- Epoch numbers: an epoch counts once all its batches were handed out; an abandoned epoch is
  replayed from its start by the next iteration. ``first_epoch=k`` starts at epoch k
  (exact resume).
- Order: with a seed, batches are handed out in order, so two runs give the same batches
  whatever the worker count (the cost: a slow batch holds back the ones after it, a few
  percent with the default window). Without a seed, batches go out as soon as any worker
  finishes.
"""

from __future__ import annotations

import itertools
import pickle
import threading

import numpy as np

from augmine.core.errors import AugmineError
from augmine.feed.batches import BatchJob, BatchMaker
from augmine.feed.sampling import epoch_tasks
from augmine.feed.workers import WINDOW_PER_WORKER, WorkerGroup


class _Epoch:
    """One epoch's task list and its batches that arrived but were not handed out yet."""

    def __init__(self, tasks: list, epoch: int, tag: int):
        self.tasks, self.epoch, self.tag = tasks, epoch, tag
        self.submitted = self.served = 0
        self.ready: dict = {}         # batch_no -> (ok, batch or error text)

    @property
    def done(self) -> bool:
        return self.served >= len(self.tasks)


class TrainFeed:
    """The engine behind one ``train_dataset``: its job, epoch counter and persistent workers.

    Thread-safe: tf.data calls the generator from its own threads, and an abandoned
    iterator's thread may still be running when the next epoch starts.
    """

    def __init__(self, job: BatchJob, factors, batch_size: int, seed, workers: int,
                 first_epoch: int, num_batches: int, shard=None):
        self.job, self.factors, self.batch_size, self.seed = job, factors, batch_size, seed
        self.shard = shard
        self.workers = min(workers, max(1, num_batches)) if workers else 0
        self.ordered = seed is not None
        self.epoch = int(first_epoch)
        self.num_batches = num_batches
        self.group: WorkerGroup | None = None
        self.maker = BatchMaker(job) if workers == 0 else None
        self.active: _Epoch | None = None
        self.upcoming: _Epoch | None = None   # the next epoch, started early (see advance)
        self._tags = itertools.count()
        self._lock = threading.RLock()
        self._job_bytes: bytes | None = None

    def tasks_for(self, epoch: int) -> list:
        """``[(batch_no, indices, seed or None), ...]`` of ``epoch``, from ``(seed, epoch)``."""
        return epoch_tasks(self.job.labels, self.factors, self.batch_size, self.seed, epoch,
                           self.shard)

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
        self.group = WorkerGroup(self._job_bytes, self.workers, hide_main=hide_main,
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
                self.active = _Epoch(self.tasks_for(self.epoch), self.epoch, next(self._tags))
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
            up = self.upcoming = _Epoch(self.tasks_for(ep.epoch + 1), ep.epoch + 1,
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


class EvalFeed:
    """The engine behind one ``eval_dataset``: batch ``i`` in file order, in this process;
    with ``keep``, each batch is decoded once and kept for every later pass."""

    def __init__(self, job: BatchJob, batch_size: int, keep: bool = False):
        self.job, self.batch_size = job, batch_size
        self.maker = BatchMaker(job)
        self.num_batches = -(-len(job.paths) // batch_size)
        self.kept: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if keep else None

    def batch(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= i < self.num_batches:
            raise IndexError(f"batch {i} of {self.num_batches}")
        if self.kept is not None and i in self.kept:
            return self.kept[i]
        made = self.maker(np.arange(i * self.batch_size,
                                    min((i + 1) * self.batch_size, len(self.job.paths))), None)
        if self.kept is not None:
            self.kept[i] = made
        return made

    def iterate_epoch(self):
        for i in range(self.num_batches):
            yield self.batch(i)

    def close(self) -> None:
        """Nothing runs in the background for evaluation."""
