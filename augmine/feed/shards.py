"""Which part of every training epoch each process of a multi-worker run reads (pure numpy).

The single-process feed cuts an epoch's shuffled sample order into ``ceil(M / B)`` batches of
``B`` (the config's ``batch_size``; the last one partial). With ``P`` processes, process
``p`` reads the ``p``-th of ``P`` contiguous, near-equal slices (``np.array_split``) of every
one of those batches, so

- the shards are disjoint and together are exactly the single-process epoch, batch by batch
  (the global batch of step ``k`` is the single-process batch ``k``);
- every process takes the same number of steps (collective ops never wait for a process
  that ran out): ``ceil(M / B)``, one fewer when the last batch holds fewer than ``P``
  samples: that tail joins the step before it, so no process gets an empty batch;
- the remainder: when a batch's size is not a multiple of ``P`` (with ``B`` a multiple of
  ``P``, only the epoch's last batch) the first ``n mod P`` processes read one sample more
  in that step. TensorFlow's MultiWorkerMirroredStrategy takes batches of different sizes;
  JAX assembles one global array from equal per-process blocks, so there (``equal_sizes``)
  each shorter slice repeats its own first sample once: at most one sample per process per
  epoch is read twice, none is left out.

Each process's batch gets its own augmentation seed, drawn from the batch's single-process
seed and the process index (:func:`shard_seeds`), so runs stay reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from augmine.core.errors import AugmineError


@dataclass(frozen=True)
class Shard:
    """Process ``index`` of ``count`` (0 is the chief); ``equal_sizes``: pad shorter slices
    so every process's batch of a step has the same size (JAX)."""

    index: int
    count: int
    equal_sizes: bool = False

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise AugmineError(f"process {self.index} of {self.count}: the process index must "
                               "be 0..count-1 and the count >= 1; check the launch environment")


def steps_per_epoch(length: int, batch_size: int, shard: Shard | None = None) -> int:
    """Batches per epoch of ``length`` samples in batches of ``batch_size`` for every
    process of ``shard`` (None: one process, ``ceil(length / batch_size)``)."""
    steps = -(-int(length) // int(batch_size))
    if shard is None or shard.count == 1:
        return steps
    tail = int(length) - (steps - 1) * int(batch_size)
    return steps - 1 if steps > 1 and tail < shard.count else steps


def shard_batches(order: np.ndarray, batch_size: int, shard: Shard | None = None
                  ) -> list[np.ndarray]:
    """The batches of one epoch this process reads: ``order`` (M,) int sample indices in epoch
    order, cut into ``batch_size`` batches, each split among the processes of ``shard`` (see
    the module docstring; None: the whole batches). Returns :func:`steps_per_epoch` arrays of
    int64 indices."""
    order = np.asarray(order, dtype=np.int64)
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if shard is None or shard.count == 1:
        return batches
    if len(order) < shard.count:
        raise AugmineError(f"an epoch of {len(order)} samples cannot be split among "
                           f"{shard.count} processes; use more training images or fewer "
                           "processes")
    if len(batches) > 1 and len(batches[-1]) < shard.count:
        tail = batches.pop()
        batches[-1] = np.concatenate([batches[-1], tail])
    mine = []
    for batch in batches:
        part = np.array_split(batch, shard.count)[shard.index]
        if shard.equal_sizes and len(part) * shard.count < len(batch):
            part = np.concatenate([part, part[:1]])       # one repeat: the same shape everywhere
        mine.append(part)
    return mine


def shard_seeds(seeds, shard: Shard | None = None) -> list[int]:
    """Augmentation seeds of this process's batches from the single-process batch seeds
    (an int sequence): unchanged for one process, else one new seed per ``(seed, process
    index)``."""
    if shard is None or shard.count == 1:
        return [int(s) for s in seeds]
    return [int(np.random.default_rng([int(s), shard.index]).integers(0, 2**62))
            for s in seeds]
