"""Weak-class policies: which classes a mining round works on, from per-class F1 (C,).

:func:`bottom_k`, :func:`below_threshold` and :func:`below_zscore` return class indices,
weakest first; :func:`select_weak` picks one by name (``POLICIES``). A new policy is a pure
function here, named in :func:`select_weak` and ``POLICIES``.
"""

from __future__ import annotations

import numpy as np

from augmine.analysis._internal import f1_1d
from augmine.core.errors import AugmineError

POLICIES = ("bottom-k", "threshold", "zscore")


def bottom_k(f1, k: int) -> list[int]:
    """Indices of the ``k`` classes with the lowest F1, weakest first (ties: lower index first)."""
    if k < 1:
        raise AugmineError(f"--k {k}: choose at least 1 class")
    f1 = f1_1d(f1)
    return [int(i) for i in np.lexsort((np.arange(len(f1)), f1))[:k]]


def below_threshold(f1, threshold: float) -> list[int]:
    """Indices of classes with F1 strictly below ``threshold``, weakest first."""
    f1 = f1_1d(f1)
    return [i for i in bottom_k(f1, len(f1)) if f1[i] < threshold]


def below_zscore(f1, z: float) -> list[int]:
    """Indices of classes with F1 below ``mean - z * std`` (population std), weakest first."""
    f1 = f1_1d(f1)
    return below_threshold(f1, float(f1.mean() - z * f1.std()))


def select_weak(f1, policy: str = "bottom-k", k: int | None = None,
                threshold: float | None = None, z: float | None = None) -> list[int]:
    """Weak classes by ``policy``: ``bottom-k`` (needs k), ``threshold`` or ``zscore`` (needs z)."""
    if policy == "bottom-k":
        return bottom_k(f1, 20 if k is None else int(k))
    if policy == "threshold":
        if threshold is None:
            raise AugmineError("policy 'threshold' needs --threshold (an F1 value, e.g. 0.5)")
        return below_threshold(f1, float(threshold))
    if policy == "zscore":
        return below_zscore(f1, 1.0 if z is None else float(z))
    raise AugmineError(f"unknown weak-class policy {policy!r}; choose one of {', '.join(POLICIES)}")
