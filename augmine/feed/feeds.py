"""Training and evaluation input feeds: a :class:`DatasetIndex` -> a feed for ``model.fit``,
and the engines behind them (:class:`TrainFeed` schedules each epoch's batches onto a
persistent worker group; :class:`EvalFeed` makes evaluation batches in this process).

The main process only decides each epoch's sample order and cuts it into batches of indices
(:mod:`augmine.feed.sampling`); worker processes (:mod:`augmine.feed.workers`) each read,
decode (or take from the decoded-image cache), augment and resize one whole batch
(:mod:`augmine.feed.batches`); :class:`TrainFeed` keeps them busy
across epochs. The main process does no per-pixel work beyond one copy: batches stay uint8
(the model scales them, see :func:`augmine.model.sources.build_densenet`).

- The feed: on the TensorFlow backend a ``tf.data.Dataset`` (``from_generator`` + prefetch,
  see :mod:`augmine.feed.tf_backend`); on JAX and PyTorch a ``keras.utils.PyDataset``. Both give
  ``(images uint8 (B, size, size, 3), labels int32 (B,))``, ``ceil(n / batch_size)``
  batches per epoch, and go straight into ``model.fit`` / ``model.predict``. On the Keras
  feed the k-th ``__getitem__`` call of an epoch returns the epoch's k-th batch whatever the
  index asked for (the sample order is shuffled already, so Keras' own batch shuffle
  changes nothing).
- Workers start on a training feed's first epoch and serve every later one; they stop on
  :func:`close_feed`, when the feed is garbage-collected, on Ctrl-C and at exit.
- Oversampling: an ``OversamplingPlan`` repeats the samples of its classes (see
  :mod:`augmine.feed.sampling`); the weak classes use ``plan.recipe`` when it is set. A
  recipe's class overrides (``classes:``) apply per sample (see :mod:`augmine.feed.batches`).
- Errors: a bad image raises :class:`AugmineError` naming the file inside the worker. tf.data
  turns exceptions from Python generators into ``tf.errors.OpError`` carrying the message;
  wrap ``fit``/loops in :func:`pipeline_errors` to get the ``AugmineError`` back (on every
  backend).
"""

from __future__ import annotations

import contextlib
import itertools
import pickle
import sys
import threading
import weakref

import numpy as np

from augmine.core.errors import AugmineError
from augmine.feed.batches import (add_class_composes, BatchJob, BatchMaker, compose_for,
                                  prepare_cache)
from augmine.feed.sampling import epoch_length, epoch_tasks, plan_factors, steps_per_epoch
from augmine.feed.workers import (default_workers, install_sigint_hook, WINDOW_PER_WORKER,
                                  WorkerGroup)


# =========================================================================== scheduler
# The engines behind the feeds: :class:`TrainFeed` schedules each training epoch's batches
# onto a persistent :class:`~augmine.feed.workers.WorkerGroup`; :class:`EvalFeed` makes
# evaluation batches in file order, in this process.
#
# - Persistent workers: a training feed starts its workers on its first epoch and keeps them
# for every later epoch (like PyTorch's ``persistent_workers``); after Ctrl-C or a dead
# worker, the next epoch starts new ones. Once an epoch's last tasks are out, the free
# places in the window (:data:`~augmine.feed.workers.WINDOW_PER_WORKER` batches per worker)
# go to the next epoch's first batches (made from ``(seed, epoch + 1)``, so nothing changes
# but when they are made): the workers keep going through validation, callbacks and the
# start of the next iteration instead of waiting. Each epoch's tasks carry a tag, so an
# epoch abandoned half-way (``break``, an exception) leaves nothing behind that a later
# epoch could receive (the next epoch's early batches are dropped with it).
# - Epoch numbers: an epoch counts once all its batches were handed out; an abandoned epoch is
# replayed from its start by the next iteration. ``first_epoch=k`` starts at epoch k
# (exact resume).
# - Order: with a seed, batches are handed out in order, so two runs give the same batches
# whatever the worker count (the cost: a slow batch holds back the ones after it, a few
# percent with the default window). Without a seed, batches go out as soon as any worker
# finishes.

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


# =========================================================================== feeds

def check_batch_args(size, batch_size) -> tuple[int, int]:
    """``(size, batch_size)`` as ints; :class:`AugmineError` unless both are positive."""
    if int(size) < 1:
        raise AugmineError(f"image size {size}: use a positive size such as 16, 32 or 64")
    if int(batch_size) < 1:
        raise AugmineError(f"batch size {batch_size}: use a positive batch size")
    return int(size), int(batch_size)


_keras_feed_class = None


def _keras_feed(core):
    """A ``keras.utils.PyDataset`` over ``core`` (a TrainFeed or EvalFeed), for JAX/PyTorch."""
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
                if isinstance(core, EvalFeed):
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
                if isinstance(self._augmine_feed, TrainFeed):
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
    ``cache``: None, True/"memory" or a ``.npy`` path (decoded images, see
    :func:`augmine.feed.batches.prepare_cache`);
    ``first_epoch``: the epoch number the first iteration uses (order and seeds: exact
    resume); ``presize``: shrink every source image to ``size`` px (shorter side, INTER_AREA)
    once, before the recipe (in the cache when there is one), so small phases run the recipe
    on small images: much cheaper, slightly different augmentation (crops lose detail);
    ``shard``: a :class:`~augmine.feed.sampling.Shard`, this process's part of every epoch in a
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
    factors = plan_factors(plan, index.num_classes)
    from albumentations.core.composition import BaseCompose

    from augmine.augment.recipes import as_recipe

    recipe = recipe if isinstance(recipe, BaseCompose) else as_recipe(recipe)
    composes = [compose_for(recipe, size)]
    recipe_of_class = np.zeros(index.num_classes, np.int64)
    strong = getattr(plan, "recipe", None) if plan is not None else None
    if strong:
        composes.append(compose_for(strong, size))
        recipe_of_class[list(getattr(plan, "weak", []))] = 1
    first_override = None if isinstance(recipe, BaseCompose) else \
        add_class_composes(index, recipe, size, composes, recipe_of_class)
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise AugmineError(f"workers {workers}: use 0 (in-process) or more")
    length = epoch_length(index, plan, split)
    job = BatchJob(paths=[str(p) for p in sp.paths], labels=np.asarray(sp.labels, np.int64),
               size=size, composes=composes, recipe_of_class=recipe_of_class,
               seeded=seed is not None, presize=bool(presize), first_override=first_override)
    core = TrainFeed(job, factors, batch_size, seed, workers, first_epoch,
                     steps_per_epoch(length, batch_size, shard), shard)
    cache_path = prepare_cache(cache, sp.paths, core, size if presize else None)
    if cache_path is not None:
        job.cache_path, job.presize = cache_path, False     # the cache holds presized images
        core.maker = BatchMaker(job) if workers == 0 else None
    if workers:
        install_sigint_hook()
    return _make_feed(core, size)


def eval_dataset(index, size: int, batch_size: int, split: str = "val", keep: bool = False):
    """The evaluation feed: no augmentation, file order kept, resized to ``size``.

    Labels line up with ``index.split(split).labels``. Decoding and resizing (OpenCV,
    ``A.Resize`` as a recipe's final resize) run in this process: at 20k+ images/s per core
    they are cheap next to a model's forward pass. Batches are ``(images uint8 (B, size,
    size, 3), labels int32 (B,))``, the last one partial; a ``tf.data.Dataset`` on
    TensorFlow, a ``keras.utils.PyDataset`` on JAX/PyTorch (as :func:`train_dataset`).
    ``keep``: decode and resize each image once, on the first pass, and keep the batches
    (size x size x 3 bytes an image) for every later pass (the validation of every epoch).
    """
    import albumentations as A

    size, batch_size = check_batch_args(size, batch_size)
    sp = index.split(split)
    job = BatchJob(paths=[str(p) for p in sp.paths], labels=np.asarray(sp.labels, np.int64),
               size=size, composes=[A.Compose([A.Resize(size, size)])],
               recipe_of_class=np.zeros(index.num_classes, np.int64), seeded=True)
    return _make_feed(EvalFeed(job, batch_size, keep=keep), size)


def close_feed(feed) -> None:
    """Stop the worker processes of a feed from :func:`train_dataset` / :func:`eval_dataset` now.

    Idempotent; iterating the feed again starts new workers. Dropping the feed (garbage
    collection), Ctrl-C and interpreter exit stop them too.
    """
    core = getattr(feed, "_augmine_feed", None)
    if core is None:
        raise AugmineError(f"close_feed: got {type(feed).__name__}, not a feed from "
                           "augmine.feed.feeds.train_dataset or eval_dataset")
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
