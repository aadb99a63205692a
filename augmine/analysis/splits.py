"""Which images choose and which measure: seeded, stratified splits of sample indices.

:func:`selection_split` halves a split (val) into the images weak classes are chosen on and
the images a round is measured on; :func:`apply_holdout` keeps a slice of train out of
training (``mining.holdout``).
"""

from __future__ import annotations

import math

import numpy as np

from augmine.analysis._internal import labels_1d
from augmine.core.errors import AugmineError


def stratified_split(labels, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified split of sample indices: ``(rest, part)`` sorted int64 arrays.

    ``labels`` (N,) int; ``part`` takes ``round(fraction * n_c)`` samples of every class c
    (chosen at random with ``seed``), ``rest`` the others. The two never overlap and cover
    every index. Unlike scikit-learn's ``StratifiedShuffleSplit`` it accepts classes with a
    single sample (the round goes to ``part`` only when ``fraction * n_c >= 0.5``).
    """
    labels = labels_1d(labels, "labels")
    if not 0.0 < float(fraction) < 1.0:
        raise AugmineError(f"split fraction {fraction}: use a number between 0 and 1")
    rng = np.random.default_rng(int(seed))
    part = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        part.append(idx[:int(math.floor(fraction * len(idx) + 0.5))])
    part = np.sort(np.concatenate(part)) if part else np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), part)
    return rest.astype(np.int64), part.astype(np.int64)


def selection_split(labels, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(selection, measurement)`` indices: a seeded, stratified half each of a split
    (val). Weak classes are chosen on the first; before/after are measured on the second
    (which gets the odd image of a class with an odd count)."""
    selection, measurement = stratified_split(labels, 0.5, seed)
    return selection, measurement


HALVES = ("all", "selection", "measurement")


def val_half(index, half: str = "all", seed: int = 0):
    """``index`` with its val split cut to one half of :func:`selection_split` (``half``
    ``"selection"`` or ``"measurement"``; ``"all"``: unchanged). The tailoring of ``recipe
    tailor --half selection`` reads the first, ``recipe compare --measure-half`` scores on
    the second: with the same ``seed`` the two never share an image and together cover val."""
    if half == "all":
        return index
    if half not in HALVES:
        raise AugmineError(f"half {half!r}: use one of {', '.join(HALVES)}")
    from dataclasses import replace

    rows = selection_split(index.val.labels, seed)[HALVES.index(half) - 1]
    return replace(index, splits={**index.splits, "val": index.val.subset(rows)})


def apply_holdout(index, fraction: float | None, seed: int = 0):
    """``index`` with a stratified ``fraction`` of its train split moved to a ``holdout``
    split (kept out of training; used to choose weak classes and score suspects out of
    sample). ``fraction`` None or 0: ``index`` unchanged. Same seed, same slice."""
    if not fraction:
        return index
    if "holdout" in index.splits:
        return index
    from dataclasses import replace

    keep, held = stratified_split(index.train.labels, float(fraction), seed)
    if len(held) == 0 or len(keep) == 0:
        raise AugmineError(f"holdout {fraction}: leaves {len(keep)} training and {len(held)} "
                           "held-out images; choose a fraction that keeps both non-empty")
    return replace(index, splits={**index.splits, "train": index.train.subset(keep),
                                  "holdout": index.train.subset(held)})
