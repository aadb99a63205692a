"""Input checks shared by the analysis modules (one-line errors for arrays of the wrong shape)."""

from __future__ import annotations

import numpy as np

from augmine.core.errors import AugmineError


def labels_1d(y, name: str) -> np.ndarray:
    """``y`` as (N,) int64 class indices; a one-line error naming ``name`` otherwise."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise AugmineError(f"{name} must be a 1-D array of class indices, got shape {y.shape}")
    return y.astype(np.int64)


def f1_1d(f1) -> np.ndarray:
    """Per-class F1 as (C,) float64; a one-line error otherwise."""
    f1 = np.asarray(f1, dtype=np.float64)
    if f1.ndim != 1:
        raise AugmineError(f"F1 scores must be a 1-D array (one per class), got shape {f1.shape}")
    return f1
