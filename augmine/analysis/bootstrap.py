"""Paired percentile bootstrap over images: the one resampler and the one interval.

:func:`paired_bootstrap` draws ``reps`` resamples of the N images (with replacement) and
hands every arm the same ones, so differences between arms keep the pairing;
:func:`percentile_interval` turns resampled statistics into an interval;
:func:`mean_intervals` is both for per-image scores (accuracy, drops). Hand-written because
scikit-learn has none and scipy's ``bootstrap`` does not pair arms without copying every
resample. Same seed, same resamples.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from augmine.core.errors import AugmineError

CHUNK_INDICES = 2_000_000    # index entries drawn at once (bounds the memory of one chunk)


def paired_bootstrap(stat: Callable[[np.ndarray], np.ndarray], n: int, reps: int = 2000,
                     seed: int = 0) -> np.ndarray:
    """``stat`` on ``reps`` resamples of ``n`` images: (reps, ...) float64, in draw order.

    ``stat(idx)`` gets ``idx`` (m, n) int64 (m resamples at once, each row n indices drawn
    with replacement) and returns an (m, ...) array: the statistics of every arm on each
    resampled row, so the arms share the rows (paired).
    """
    if n < 1:
        raise AugmineError("bootstrap: need at least one image to resample")
    rng = np.random.default_rng(int(seed))
    chunk = max(1, min(int(reps), CHUNK_INDICES // n))
    out = [np.asarray(stat(rng.integers(0, n, size=(min(chunk, reps - start), n))),
                      dtype=np.float64) for start in range(0, int(reps), chunk)]
    return np.concatenate(out)


def percentile_interval(samples, level: float = 0.95, axis: int = 0):
    """``(lo, hi)``: the percentile interval covering ``level`` of bootstrap ``samples`` along
    ``axis`` (non-finite values ignored; NaN where none is finite)."""
    samples = np.asarray(samples, dtype=np.float64)
    samples = np.where(np.isfinite(samples), samples, np.nan)
    tail = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)        # all-NaN slices -> NaN
        lo, hi = np.nanquantile(samples, [tail, 1 - tail], axis=axis)
    return lo, hi


def mean_intervals(scores, reps: int = 2000, seed: int = 0,
                   level: float = 0.95) -> dict[str, np.ndarray]:
    """Means of per-image scores with paired bootstrap intervals, and differences against arm 0.

    ``scores``: (A, N) per-image scores of A arms on the same N images (e.g. 1 where the
    prediction is right). Returns ``{"mean" (A,), "low" (A,), "high" (A,), "diff" (A,),
    "diff_low" (A,), "diff_high" (A,)}`` (``diff``: arm - arm 0, so arm 0's are 0).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise AugmineError(f"bootstrap: need (arms, images) scores with at least one image, "
                           f"got shape {scores.shape}")
    means = paired_bootstrap(lambda idx: scores[:, idx].mean(axis=2).T, scores.shape[1],
                             reps, seed)                                    # (reps, A)
    lo, hi = percentile_interval(means, level)
    dlo, dhi = percentile_interval(means - means[:, :1], level)
    mean = scores.mean(axis=1)
    return {"mean": mean, "low": lo, "high": hi, "diff": mean - mean[0], "diff_low": dlo,
            "diff_high": dhi}
