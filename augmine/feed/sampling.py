"""Sampling math of the training feed, pure NumPy: oversampling plans, epoch orders, batches.

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
                seed: int | None, epoch: int) -> list:
    """``[(batch_no, indices (B,) int64, seed int or None), ...]``: one training epoch cut
    into batches, from ``(seed, epoch)`` (fresh randomness when ``seed`` is None).

    ``labels`` (N,) int; ``factors`` (C,) float >= 1 or None, as :func:`epoch_order`.
    """
    rng = np.random.default_rng(None if seed is None else [int(seed), int(epoch)])
    order = epoch_order(labels, factors, rng)
    starts = range(0, len(order), batch_size)
    seeds = rng.integers(0, 2**62, len(starts)) if seed is not None else [None] * len(starts)
    return [(k, order[s:s + batch_size], seeds[k]) for k, s in enumerate(starts)]
