"""Affinity statistics and the tailor rule (pure numpy; no model, no files).

Affinity (Gontijo-Lopes et al., ICLR 2021) is the clean model's accuracy on augmented
validation images. Per class and per transform, the *drop* is clean accuracy minus
augmented accuracy; :func:`affinity_table` gives it with bootstrap 95% intervals
(val images resampled within the class, paired across clean and augmented, by
:func:`augmine.analysis.bootstrap.mean_intervals`).

The tailor rule (:func:`tailor_overrides`), per class ``c`` and column ``t`` (a top-level
transform of the recipe, or the whole recipe):

- ``excess = drop(c, t) - drop(others, t)``, where ``drop(others, t)`` is the mean drop over
  the other classes' val images;
- ``t`` is switched off for ``c`` (``without: [t]``) when the bootstrap 95% interval of
  ``excess`` (class ``c``'s images resampled; the others' mean, over many more images, taken
  as fixed) lies above zero **and** ``excess >= margin`` (default 0.10: ten points of
  accuracy);
- when the same holds for the whole recipe, ``c`` gets ``strength: 0.5`` (its phase strength
  halved) instead of losing a transform it was not singled out for.

Every override carries a ``why:`` that quotes the numbers, e.g. ``affinity:
RandomResizedCrop costs this class 31 points [22, 40] against 9 [6, 12] for the others``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from augmine.core.errors import AugmineError
from augmine.analysis.bootstrap import mean_intervals

WHOLE = "whole recipe"     # the name of the last column: the recipe as written
DEFAULT_MARGIN = 0.10
TAILORED_STRENGTH = 0.5


def affinity_table(correct, labels, num_classes: int, samples: int = 2000,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Per-class and overall drops with bootstrap 95% intervals.

    ``correct``: (V, N) float, per val image the share of draws classified right under
    variant v (v = 0: clean images; v >= 1: augmented); ``labels``: (N,) int class of each
    image. Returns ``{"clean" (C,), "acc" (C, V), "drop" (C, V-1), "low" (C, V-1),
    "high" (C, V-1), "support" (C,), "overall_clean" (), "overall_drop" (V-1,),
    "overall_low" (V-1,), "overall_high" (V-1,)}``; drops are clean - augmented accuracy
    (positive: the transform costs accuracy), NaN for classes without val images.
    """
    correct = np.asarray(correct, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if correct.ndim != 2 or correct.shape[0] < 2 or correct.shape[1] != len(labels):
        raise AugmineError(f"affinity: need (variants >= 2, {len(labels)} images) scores, got "
                           f"shape {correct.shape}")
    v = correct.shape[0]
    out = {k: np.full((num_classes, v - 1), np.nan) for k in ("drop", "low", "high")}
    out["acc"] = np.full((num_classes, v), np.nan)
    out["support"] = np.bincount(labels, minlength=num_classes)
    for c in range(num_classes):
        mask = labels == c
        if not mask.any():
            continue
        b = mean_intervals(correct[:, mask], reps=samples, seed=seed + c)
        out["acc"][c] = b["mean"]
        out["drop"][c] = -b["diff"][1:]
        out["low"][c], out["high"][c] = -b["diff_high"][1:], -b["diff_low"][1:]
    out["clean"] = out["acc"][:, 0]
    b = mean_intervals(correct, reps=samples, seed=seed)
    out["overall_clean"] = np.float64(b["mean"][0])
    out["overall_drop"] = -b["diff"][1:]
    out["overall_low"], out["overall_high"] = -b["diff_high"][1:], -b["diff_low"][1:]
    return out


def per_image_drops(correct, labels, num_classes: int) -> list[np.ndarray]:
    """``correct`` (V, N) -> per class c an (n_c, V-1) array of per-image drops (clean
    score minus each augmented variant's score), the input of :func:`tailor_overrides`."""
    correct = np.asarray(correct, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    drops = (correct[:1] - correct[1:]).T                      # (N, V-1)
    return [drops[labels == c] for c in range(num_classes)]


def _points(x: float) -> str:
    return f"{int(round(100 * x))}"


def _interval(lo: float, hi: float) -> str:
    return f"[{_points(lo)}, {_points(hi)}]"


def tailor_overrides(drops: Sequence[np.ndarray], class_ids: Sequence[str],
                     columns: Sequence[str], margin: float = DEFAULT_MARGIN,
                     samples: int = 2000, seed: int = 0,
                     strength: float = TAILORED_STRENGTH) -> dict[str, dict]:
    """The per-class overrides the affinity drops call for (the rule in the module docstring).

    ``drops``: per class an (n_c, K) float array of per-image drops (clean minus augmented
    accuracy, averaged over draws), columns ``columns`` (K names: the recipe's top-level
    transforms, the last one :data:`WHOLE`, the recipe as written). Returns ``{class id:
    {"strength": s (whole-recipe rule only), "without": [names] (only when some), "why":
    text}}`` for the classes the rule picks, in class order; ``{}`` when none.
    """
    if len(drops) != len(class_ids):
        raise AugmineError(f"tailor: {len(drops)} drop arrays for {len(class_ids)} classes")
    if not columns or columns[-1] != WHOLE:
        raise AugmineError(f"tailor: the last column must be {WHOLE!r}, got {list(columns)}")
    if margin < 0:
        raise AugmineError(f"--margin {margin}: use 0 or more (accuracy, e.g. 0.10)")
    drops = [np.asarray(d, dtype=np.float64).reshape(-1, len(columns)) for d in drops]
    out: dict[str, dict] = {}
    for c, cid in enumerate(class_ids):
        if len(drops[c]) == 0:
            continue
        others = [d for i, d in enumerate(drops) if i != c and len(d)]
        if not others:
            continue
        pool = np.concatenate(others)                            # (n_others, K)
        other_mean = pool.mean(axis=0)
        excess = mean_intervals((drops[c] - other_mean).T, reps=samples,
                                       seed=seed + c)
        own = mean_intervals(drops[c].T, reps=samples, seed=seed + c)
        rest = mean_intervals(pool.T, reps=samples, seed=seed)
        hit = (excess["low"] > 0) & (excess["mean"] >= margin)
        if not hit.any():
            continue

        def why(k: int, what: str) -> str:
            return (f"{what} costs this class {_points(own['mean'][k])} points "
                    f"{_interval(own['low'][k], own['high'][k])} against "
                    f"{_points(rest['mean'][k])} {_interval(rest['low'][k], rest['high'][k])} "
                    "for the others")

        entry: dict = {}
        reasons = []
        if hit[-1]:
            entry["strength"] = float(strength)
            reasons.append(why(len(columns) - 1, "the whole recipe"))
        off = [k for k in range(len(columns) - 1) if hit[k]]
        names = list(dict.fromkeys(_base_name(columns[k]) for k in off))
        if names:
            entry["without"] = names
            reasons += [why(k, columns[k]) for k in off]
        entry["why"] = "affinity: " + "; ".join(reasons)
        out[str(cid)] = entry
    return out


def _base_name(column: str) -> str:
    """``OneOf#2`` (the second OneOf of a recipe) -> ``OneOf``: the name a recipe uses."""
    return column.split("#", 1)[0]


def column_names(transforms: Sequence[str]) -> list[str]:
    """Unique column names for a recipe's top-level transform names (a repeated name gets
    ``#2``, ``#3``), plus :data:`WHOLE`."""
    seen: dict[str, int] = {}
    out = []
    for name in transforms:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out + [WHOLE]


def most_costly(overall_drop, top: int) -> list[int]:
    """Indices of the ``top`` largest overall drops, largest first (NaN last)."""
    d = np.nan_to_num(np.asarray(overall_drop, dtype=np.float64), nan=-np.inf)
    return [int(i) for i in np.argsort(-d, kind="stable")[:top]]
