"""Training and evaluation input feeds: a :class:`DatasetIndex` -> a feed for ``model.fit``.

The main process only decides each epoch's sample order and cuts it into batches of indices
(:mod:`augmine.feed.sampling`); worker processes (:mod:`augmine.feed.workers`) each read,
decode (or take from the decoded-image cache, :mod:`augmine.feed.cache`), augment and resize
one whole batch (:mod:`augmine.feed.batches`); :mod:`augmine.feed.scheduler` keeps them busy
across epochs. The main process does no per-pixel work beyond one copy: batches stay uint8
(the model scales them, see :func:`augmine.model.densenet.build_densenet`).

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
import sys
import weakref

import numpy as np

from augmine.core.errors import AugmineError
from augmine.feed.batches import BatchJob, BatchMaker, add_class_composes, compose_for
from augmine.feed.cache import prepare_cache
from augmine.feed.sampling import epoch_length, plan_factors
from augmine.feed.scheduler import EvalFeed, TrainFeed
from augmine.feed.shards import steps_per_epoch
from augmine.feed.workers import default_workers, install_sigint_hook


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
    :func:`augmine.feed.cache.prepare_cache`);
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
