"""Sampling math of the training feed, pure NumPy: oversampling plans, epoch orders,
batches, and which part of every epoch each process of a multi-worker run reads.

- Oversampling: an ``OversamplingPlan`` (anything with ``.factors`` (C,) >= 1, ``.weak``
  and ``.recipe``) makes each sample of class c appear ``floor(f_c)`` times per epoch plus
  once more for a random ``round(frac(f_c) * n_c)`` of the class's samples (so each sample
  gets its extra copy with probability ``frac(f_c)`` and the epoch length is fixed, which
  Keras progress bars and step-based schedules need). Nothing is dropped.
- Determinism: with a ``seed`` an epoch's order and every batch's augmentation seed follow
  from ``(seed, epoch number)`` (:func:`epoch_tasks`); without one they are fresh each run.

Light on purpose: :func:`epoch_length` is what ``augmine.train`` and ``augmine.rounds`` need,
without the worker machinery of :mod:`augmine.feed.feeds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from augmine.core.errors import AugmineError


def plan_factors(plan: Any, num_classes: int) -> np.ndarray | None:
    """``plan.factors`` as (C,) float64, checked against ``num_classes``; None without a plan."""
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
    factors = plan_factors(plan, index.num_classes)
    if factors is None:
        return len(labels)
    counts = np.bincount(labels, minlength=index.num_classes)
    return int((np.floor(factors).astype(np.int64) * counts).sum()
               + _extra_counts(counts, factors).sum())


def epoch_tasks(labels: np.ndarray, factors: np.ndarray | None, batch_size: int,
                seed: int | None, epoch: int, shard=None) -> list:
    """``[(batch_no, indices (B,) int64, seed int or None), ...]``: one training epoch cut
    into batches, from ``(seed, epoch)`` (fresh randomness when ``seed`` is None).

    ``labels`` (N,) int; ``factors`` (C,) float >= 1 or None, as :func:`epoch_order`;
    ``shard``: a :class:`~augmine.feed.sampling.Shard`, this process's part of every batch in a
    multi-worker run (None: the whole batches).
    """
    rng = np.random.default_rng(None if seed is None else [int(seed), int(epoch)])
    order = epoch_order(labels, factors, rng)
    batches = shard_batches(order, batch_size, shard)
    seeds = (shard_seeds(rng.integers(0, 2**62, -(-len(order) // batch_size)), shard)
             if seed is not None else [None] * len(batches))
    return [(k, idx, seeds[k]) for k, idx in enumerate(batches)]


# =========================================================================== shards
# Which part of every training epoch each process of a multi-worker run reads (pure numpy).
#
# The single-process feed cuts an epoch's shuffled sample order into ``ceil(M / B)`` batches of
# ``B`` (the config's ``batch_size``; the last one partial). With ``P`` processes, process
# ``p`` reads the ``p``-th of ``P`` contiguous, near-equal slices (``np.array_split``) of every
# one of those batches, so
#
# - the shards are disjoint and together are exactly the single-process epoch, batch by batch
# (the global batch of step ``k`` is the single-process batch ``k``);
# - every process takes the same number of steps (collective ops never wait for a process
# that ran out): ``ceil(M / B)``, one fewer when the last batch holds fewer than ``P``
# samples: that tail joins the step before it, so no process gets an empty batch;
# - the remainder: when a batch's size is not a multiple of ``P`` (with ``B`` a multiple of
# ``P``, only the epoch's last batch) the first ``n mod P`` processes read one sample more
# in that step. TensorFlow's MultiWorkerMirroredStrategy takes batches of different sizes;
# JAX assembles one global array from equal per-process blocks, so there (``equal_sizes``)
# each shorter slice repeats its own first sample once: at most one sample per process per
# epoch is read twice, none is left out.
#
# Each process's batch gets its own augmentation seed, drawn from the batch's single-process
# seed and the process index (:func:`shard_seeds`), so runs stay reproducible.

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
