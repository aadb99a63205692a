"""Everything augmine does with TensorFlow itself, in one module.

Imported only on the TensorFlow backend (or by the tf.data service), so JAX and PyTorch
runs never import TensorFlow. TensorFlow is imported through
:func:`augmine.core.runtime.import_tensorflow` (quiet start-up).
"""

from __future__ import annotations

import re

from augmine.core.errors import AugmineError
from augmine.core.runtime import import_tensorflow

# =========================================================================== data
# The tf.data side of augmine.feed.feeds: wrapping the worker feed in a tf.data.Dataset and
# turning tf.data's wrapped errors back into AugmineError.


# Batches tf.data holds ready beyond the one the train step takes. The worker group keeps
# its own window of batches in flight (augmine.feed.workers.WINDOW_PER_WORKER), so this only
# overlaps the copy out of shared memory with the step.
PREFETCH_BATCHES = 2


def generator_dataset(generate, size: int, num_batches: int):
    """A ``tf.data.Dataset`` over ``generate()`` (called once per iteration, i.e. per epoch).

    ``generate`` yields ``(images uint8 (B, size, size, 3), labels int32 (B,))`` numpy
    batches. The dataset declares ``num_batches`` as its cardinality (Keras progress bars,
    step-based schedules) and prefetches :data:`PREFETCH_BATCHES`; the images stay uint8 (the
    model rescales them).

    tf.data's autotuning is off: it has nothing to tune here (one generator, a fixed
    prefetch), and with it on, dropping a finished iterator over ``from_generator`` waits for
    the autotune thread's next wake-up, seconds that double with the iterator's age (0-16 s
    measured, TensorFlow 2.21, ``benchmarks/iterator_replace.py``). Keras drops every epoch's
    iterator at the epoch's end, so each epoch paid that wait with nothing running.
    """
    tf = import_tensorflow()
    spec = (tf.TensorSpec((None, size, size, 3), tf.uint8), tf.TensorSpec((None,), tf.int32))
    ds = tf.data.Dataset.from_generator(generate, output_signature=spec)
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(PREFETCH_BATCHES).with_options(options)


_AUGMINE_IN_TF_ERROR = re.compile(r"AugmineError: (.+)")


def augmine_error_from(exc: BaseException) -> AugmineError | None:
    """The :class:`AugmineError` a ``tf.errors.OpError`` carries in its message, else None.

    tf.data turns an exception raised inside a ``from_generator`` generator into an
    ``OpError`` whose message holds ``"AugmineError: <text>"``; this recovers ``<text>``.
    """
    tf = import_tensorflow()
    if not isinstance(exc, tf.errors.OpError):
        return None
    match = _AUGMINE_IN_TF_ERROR.search(exc.message or "")
    return AugmineError(match.group(1).strip()) if match else None


def zero_batch(dataset):
    """One batch of zeros ``(x, y)`` shaped and typed like ``dataset``'s elements (batch 1),
    or None when they are not ``(x, y)`` pairs of tensors with known inner shapes."""
    tf = import_tensorflow()
    spec = getattr(dataset, "element_spec", None)
    if not isinstance(spec, tuple) or len(spec) != 2 or \
            not all(isinstance(s, tf.TensorSpec) and None not in s.shape[1:] for s in spec):
        return None
    return tuple(tf.zeros((1, *s.shape[1:]), s.dtype) for s in spec)


def no_strategy() -> bool:
    """Whether no ``tf.distribute`` strategy is in scope (there Keras builds a model's
    optimizer and compiled metrics inside the first trace of its train step)."""
    return not import_tensorflow().distribute.has_strategy()


# =========================================================================== distribution
# The tf.distribute side of augmine.train.fit (MirroredStrategy on the TensorFlow backend).

def mirrored_strategy(name: str = "auto"):
    """A ``tf.distribute`` strategy.

    ``auto``: MirroredStrategy over all local GPUs when there is more than one, else the
    default (single-device) strategy; ``mirrored``: MirroredStrategy over all GPUs, or over
    all logical CPU devices when there is no GPU; ``default``: no distribution.
    """
    tf = import_tensorflow()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    if len(devices) == 1:
        return tf.distribute.get_strategy()
    cross = None if gpus else tf.distribute.ReductionToOneDevice()
    return tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=cross)


# =========================================================================== multi-worker
# The tf.distribute side of augmine.train.fit (MultiWorkerMirroredStrategy).

_multi_worker = None


def multi_worker_strategy():
    """``tf.distribute.MultiWorkerMirroredStrategy`` over the cluster ``TF_CONFIG`` names,
    created once per process (TensorFlow allows one, before any other op runs)."""
    global _multi_worker
    if _multi_worker is None:
        tf = import_tensorflow()
        _multi_worker = tf.distribute.MultiWorkerMirroredStrategy()
        from augmine.core.compat import fix_keras_multi_worker

        fix_keras_multi_worker()
    return _multi_worker


def per_worker_dataset(strategy, dataset):
    """``dataset`` (this worker's own batches) as the strategy's distributed dataset: each
    worker reads its own, nothing is re-sharded or re-batched by tf.distribute."""
    return strategy.distribute_datasets_from_function(lambda context: dataset)


def all_workers_reached(strategy) -> None:
    """Return once every worker got here (one all-reduce of a scalar)."""
    tf = import_tensorflow()
    strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)
