"""Paired percentile bootstrap over images: the one resampler and the one interval.

:func:`paired_bootstrap` draws ``reps`` resamples of the N images (with replacement) and
hands every arm the same ones, so differences between arms keep the pairing;
:func:`percentile_interval` turns resampled statistics into an interval;
:func:`mean_intervals` is both for per-image scores (accuracy, drops);
:func:`seed_bootstrap` and :func:`seed_effect` resample training seeds, then images within
each (a two-stage bootstrap), for effects measured over several training runs. Hand-written because
scikit-learn has none and scipy's ``bootstrap`` does not pair arms without copying every
resample. Same seed, same resamples.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

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


def seed_bootstrap(stat: Callable[[int, np.ndarray], np.ndarray], sizes: Sequence[int],
                   reps: int = 2000, seed: int = 0) -> np.ndarray:
    """Two-stage bootstrap over S training seeds: (reps, ...) float64 means over seeds.

    ``sizes`` (S,): the measurement images of each seed. ``stat(s, idx)`` gets seed ``s``
    and ``idx`` (m, sizes[s]) int64 image resamples (as :func:`paired_bootstrap` gives
    them: seed ``s`` draws with ``seed + s``, so arms compared inside ``stat`` share their
    images) and returns (m, ...) statistics. Each of the ``reps`` draws takes S seeds with
    replacement, each with its own image resample, and averages them.

    Resampling both stages as they are counts the image noise twice (it is in the spread
    between the seeds' own values too; Davison & Hinkley 1997, sec. 3.8), so the seed stage
    draws each seed's value shrunk towards the mean over seeds by ``c`` with ``c**2 = 1 -
    (mean image-bootstrap variance of a seed) / (variance between the seeds' values)``
    (0 when the seeds differ no more than image noise explains); the image stage adds the
    seed's resampled deviation from its own value. So seeds that agree give about the
    interval of the images alone, seeds that disagree a wider one; with one seed this is
    :func:`paired_bootstrap` (the same draws).
    """
    sizes = [int(n) for n in sizes]
    if not sizes:
        raise AugmineError("bootstrap: need at least one training seed to resample")
    pools = np.stack([paired_bootstrap(lambda idx, s=s: stat(s, idx), n, reps, seed + s)
                      for s, n in enumerate(sizes)])                 # (S, reps, ...)
    n_seeds, reps = len(sizes), pools.shape[1]
    if n_seeds == 1:
        return pools[0]
    own = np.stack([np.asarray(stat(s, np.arange(n)[None]), np.float64)[0]
                    for s, n in enumerate(sizes)])                   # (S, ...) on all images
    mean = own.mean(axis=0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        noise = np.nanmean(np.nanvar(pools, axis=1, ddof=1), axis=0)
        between = np.var(own, axis=0, ddof=1)
        shrink = np.sqrt(np.clip(np.nan_to_num(1 - noise / between, nan=0.0), 0.0, 1.0))
    rng = np.random.default_rng([int(seed), n_seeds])
    drawn = rng.integers(0, n_seeds, size=(reps, n_seeds))           # the seeds of each draw
    # slot k of draw r takes image resample cols[r, k] of its seed: column r for slot 0,
    # a permutation for the others, so a seed drawn twice gets two image resamples
    cols = np.stack([np.arange(reps)] + [rng.permutation(reps) for _ in range(n_seeds - 1)],
                    axis=1)
    values = mean + shrink * (own[drawn] - mean) + pools[drawn, cols] - own[drawn]
    return values.mean(axis=1)


def _mean_difference(arm, control):
    return float(np.mean(arm) - np.mean(control))


def seed_effect(samples: Sequence[Sequence[np.ndarray]], effect: Callable | None = None,
                reps: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """The mean effect of an arm against its control over S training seeds, with a
    two-stage (seeds, then images) bootstrap interval (:func:`seed_bootstrap`).

    ``samples``: one entry per seed, a tuple of arrays whose first axis is that seed's
    measurement images (N_s; the arrays of one seed share it), e.g. ``(arm_scores,
    control_scores)`` (N_s,) float per-image scores, or ``(y_true, arm_pred, control_pred)``
    (N_s,) int labels. ``effect(*arrays)`` -> float or (K,) floats on one (resampled) seed;
    default ``mean(arrays[0]) - mean(arrays[1])``. Returns ``{"value", "lo", "hi"}`` (the
    mean over seeds of the effect on all images, and the ``level`` interval; float, or (K,)
    arrays) and ``"per_seed"`` (S,) or (S, K): each seed's own effect (the seed-to-seed
    spread). With one seed the interval is the paired image bootstrap's.
    """
    effect = effect or _mean_difference
    samples = [tuple(np.asarray(a) for a in arrays) for arrays in samples]
    sizes = [len(arrays[0]) for arrays in samples]
    for s, arrays in enumerate(samples):
        if any(len(a) != sizes[s] for a in arrays):
            raise AugmineError(f"bootstrap: seed {s}'s arrays cover different numbers of "
                               f"images ({', '.join(str(len(a)) for a in arrays)})")

    def stat(s: int, idx: np.ndarray) -> np.ndarray:
        return np.array([effect(*(a[i] for a in samples[s])) for i in idx], np.float64)

    per_seed = np.array([effect(*arrays) for arrays in samples], np.float64)
    lo, hi = percentile_interval(seed_bootstrap(stat, sizes, reps, seed), level)
    value = per_seed.mean(axis=0)
    if value.ndim == 0:
        value, lo, hi = float(value), float(lo), float(hi)
    return {"value": value, "lo": lo, "hi": hi, "per_seed": per_seed}
