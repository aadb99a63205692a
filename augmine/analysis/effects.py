"""What a mining round changed, with intervals: the paired percentile bootstrap over images
(the one resampler and the one interval), and before/after/control on the measurement
images.

:func:`round_metrics` scores one prediction vector (chosen-class F1, partner F1, other F1,
top-1, macro F1); :func:`effect_table` gives before, after, control and their differences
with paired bootstrap intervals (:func:`paired_bootstrap`); :func:`measurable_losses`
names every row whose interval lies below zero, which :func:`effect_warning` puts into the
verdict line (:func:`effect_note`: an overall fall within the noise);
:func:`f1_losses` lists the classes that lost most.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np

from augmine.analysis.metrics import class_scores, labels_1d, macro_mean, top1
from augmine.core.errors import AugmineError


# =========================================================================== bootstrap
# Paired percentile bootstrap over images: the one resampler and the one interval.
#
# :func:`paired_bootstrap` draws ``reps`` resamples of the N images (with replacement) and
# hands every arm the same ones, so differences between arms keep the pairing;
# :func:`percentile_interval` turns resampled statistics into an interval;
# :func:`mean_intervals` is both for per-image scores (accuracy, drops);
# :func:`seed_bootstrap` and :func:`seed_effect` resample training seeds, then images within
# each (a two-stage bootstrap), for effects measured over several training runs. Hand-written because
# scikit-learn has none and scipy's ``bootstrap`` does not pair arms without copying every
# resample. Same seed, same resamples.

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


# =========================================================================== effects

ROUND_METRICS = ("chosen F1", "other F1", "top-1", "macro F1")
PARTNER_METRIC = "partner F1"     # after "chosen F1" when a round measures partner classes


def round_metric_names(partners: Sequence[int] = ()) -> tuple[str, ...]:
    """The metrics of :func:`round_metrics`: ``ROUND_METRICS``, with ``"partner F1"``
    second when ``partners`` is not empty."""
    if not len(partners):
        return ROUND_METRICS
    return ROUND_METRICS[:1] + (PARTNER_METRIC,) + ROUND_METRICS[1:]


def round_metrics(y_true, y_pred, num_classes: int, chosen: Sequence[int],
                  partners: Sequence[int] = ()) -> np.ndarray:
    """(4,) or (5,) values of :func:`round_metric_names`: mean F1 of the ``chosen``
    classes, of the ``partners`` (only when given; partners that are chosen count as
    chosen), of the other classes (neither), top-1 accuracy and macro F1 (means over the
    classes present in ``y_true``, :func:`~augmine.analysis.metrics.macro_mean`; NaN for a
    group with none present)."""
    y_true = labels_1d(y_true, "y_true")
    per_class = class_scores(y_true, y_pred, num_classes)
    f1, support = per_class["f1"], per_class["support"]
    chosen = [int(c) for c in chosen]
    partner = [int(p) for p in partners if int(p) not in chosen]
    other = sorted(set(range(num_classes)) - set(chosen) - set(partner))
    values = [macro_mean(f1, support, chosen)]
    if len(partners):
        values.append(macro_mean(f1, support, partner))
    return np.array(values + [macro_mean(f1, support, other), top1(y_true, y_pred),
                              macro_mean(f1, support)])   # macro F1, as macro_f1 defines it


def effect_table(y_true, before, after, control=None, *, num_classes: int,
                 chosen: Sequence[int], reps: int = 1000, seed: int = 0,
                 level: float = 0.95, partners: Sequence[int] = ()) -> dict:
    """Before/after/control and their differences, each with a bootstrap interval.

    ``y_true`` (N,) labels of the measurement images; ``before``/``after``/``control`` (N,)
    predicted labels of the start model, the round's model and the control's (None: no
    control). Returns ``{metric: {"before", "after", "control", "change", "effect"}}`` for
    each of :func:`round_metric_names` (``partners``: classes measured apart as "partner
    F1", for pairs rounds), each entry ``{"value", "lo", "hi"}`` (``level`` interval over
    ``reps`` seeded, paired resamples); ``change`` = after - before, ``effect`` = after -
    control (the round's effect net of control; None without one).
    """
    y_true = labels_1d(y_true, "y_true")
    preds = {"before": before, "after": after}
    if control is not None:
        preds["control"] = control
    preds = {k: np.asarray(v) for k, v in preds.items()}
    chosen = [int(c) for c in chosen]
    partners = [int(p) for p in partners if int(p) not in chosen]
    stat = lambda t, p: round_metrics(t, p, num_classes, chosen, partners)  # noqa: E731
    point = {k: stat(y_true, v) for k, v in preds.items()}
    arms = np.stack(list(preds.values()))                                   # (A, N)
    resampled = paired_bootstrap(
        lambda idx: [[stat(y_true[i], p[i]) for p in arms] for i in idx], len(y_true), reps,
        seed)                                                               # (reps, A, K)
    boot = {k: resampled[:, a] for a, k in enumerate(preds)}
    point["change"], boot["change"] = point["after"] - point["before"], boot["after"] - boot["before"]
    if control is not None:
        point["effect"] = point["after"] - point["control"]
        boot["effect"] = boot["after"] - boot["control"]
    table = {}
    for j, metric in enumerate(round_metric_names(partners)):
        row = {}
        for k in ("before", "after", "control", "change", "effect"):
            if k not in point:
                row[k] = None
                continue
            lo, hi = percentile_interval(boot[k][:, j], level)
            row[k] = {"value": float(point[k][j]), "lo": float(lo), "hi": float(hi)}
        table[metric] = row
    return table


def f1_losses(names: Sequence[str], support, f1_ref, f1_after, top: int = 5) -> list[dict]:
    """The classes whose F1 fell most from ``f1_ref`` (C,) to ``f1_after`` (C,), worst
    first, only those that fell: ``[{index, name, support, ref, after, delta}]``."""
    f1_ref, f1_after = np.asarray(f1_ref, np.float64), np.asarray(f1_after, np.float64)
    delta = f1_after - f1_ref
    order = [int(i) for i in np.lexsort((np.arange(len(delta)), delta)) if delta[i] < 0][:top]
    return [{"index": i, "name": names[i], "support": int(np.asarray(support)[i]),
             "ref": float(f1_ref[i]), "after": float(f1_after[i]), "delta": float(delta[i])}
            for i in order]


VERDICT_ORDER = ("top-1", "macro F1", "chosen F1", PARTNER_METRIC, "other F1")


def measurable_losses(table: dict, has_control: bool) -> list[str]:
    """The rows of an :func:`effect_table` whose whole 95% interval lies below zero against
    the control (``effect``; against the start, ``change``, without a control), overall rows
    first then chosen, partner and other F1: the metric names, in that order."""
    key = "effect" if has_control else "change"
    return [m for m in VERDICT_ORDER
            if m in table and table[m][key] is not None and table[m][key]["hi"] < 0]


def cell_text(metric: str, cell: dict) -> str:
    """``metric +v [lo, hi]`` of an effect cell ``{value, lo, hi}``: top-1 in points, the
    rest to 3 decimals."""
    k, d, unit = (100, 1, " pt") if metric == "top-1" else (1, 3, "")
    return (f"{metric} {cell['value'] * k:+.{d}f}{unit} [{cell['lo'] * k:+.{d}f}, "
            f"{cell['hi'] * k:+.{d}f}]")


def _listed(parts: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _against(has_control: bool) -> tuple[str, str]:
    return ("effect", "the control") if has_control else ("change", "the start")


def effect_warning(table: dict, has_control: bool) -> str | None:
    """The verdict's loss line: every row (top-1, macro F1, chosen, partner, other F1) whose
    95% interval lies below zero against the control (or the start without a control), see
    :func:`measurable_losses`; None when no row lost measurably."""
    key, what = _against(has_control)
    lost = measurable_losses(table, has_control)
    if not lost:
        return None
    return f"WARNING: the round lowered {_listed([cell_text(m, table[m][key]) for m in lost])} " \
           f"against {what}"


def effect_note(table: dict, has_control: bool) -> str | None:
    """One neutral line when top-1 or macro F1 is below zero against the control (or the
    start) but its 95% interval includes zero: "no measurable change" when no row lost
    measurably, else "within the noise" (the losses are :func:`effect_warning`'s); None
    otherwise."""
    key, what = _against(has_control)
    fell = [cell_text(m, table[m][key]) for m in ("top-1", "macro F1")
            if table[m][key] is not None and table[m][key]["value"] < 0 <= table[m][key]["hi"]]
    if not fell:
        return None
    head = "within the noise" if measurable_losses(table, has_control) else \
        "no measurable change"
    return f"{head}: {_listed(fell)} against {what} (the 95% interval includes zero)"
