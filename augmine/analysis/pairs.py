"""Confusion pairs from a (C, C) confusion matrix (row = true class): the directed
confusions, the unordered pairs (both directions summed) and each class's confusion
partners (for pairs rounds). Pure numpy; items are JSON-ready dicts."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from augmine.core.errors import AugmineError


def confused_pairs(cm: np.ndarray, class_names: Sequence[str], top: int = 10) -> list[dict]:
    """The ``top`` directed confusions (true -> predicted, off-diagonal, count > 0).

    ``rate`` is the share of the true class's samples predicted as the other class.
    Sorted by count, then rate, then class index. Each item:
    ``{true, pred, true_name, pred_name, count, rate}``.
    """
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    rows, cols = np.nonzero(off)
    items = [{"true": int(a), "pred": int(b), "true_name": class_names[a],
              "pred_name": class_names[b], "count": int(off[a, b]),
              "rate": float(off[a, b] / support[a])} for a, b in zip(rows, cols)]
    items.sort(key=lambda d: (-d["count"], -d["rate"], d["true"], d["pred"]))
    return items[:top]


def symmetric_pairs(cm: np.ndarray, class_names: Sequence[str], top: int = 10) -> list[dict]:
    """The ``top`` unordered pairs by confusions in both directions ``cm[a,b] + cm[b,a]``.

    ``cm``: (C, C) int counts, row = true class (:func:`confusion_matrix`); ``class_names``:
    C names in label order.
    ``rate`` = count / (support of a + support of b). Each item:
    ``{a, b, a_name, b_name, count, a_to_b, b_to_a, rate}`` with ``a < b``.
    """
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    both = np.triu(cm + cm.T, k=1)
    rows, cols = np.nonzero(both)
    items = [{"a": int(a), "b": int(b), "a_name": class_names[a], "b_name": class_names[b],
              "count": int(both[a, b]), "a_to_b": int(cm[a, b]), "b_to_a": int(cm[b, a]),
              "rate": float(both[a, b] / max(1, support[a] + support[b]))}
             for a, b in zip(rows, cols)]
    items.sort(key=lambda d: (-d["count"], -d["rate"], d["a"], d["b"]))
    return items[:top]


def describe_pair(pair: dict, split: str = "val") -> str:
    """One line for a directed pair: ``"Chihuahua -> teddy bear: 14% of Chihuahua val images (7)"``."""
    return (f"{pair['true_name']} -> {pair['pred_name']}: {pair['rate']:.0%} of "
            f"{pair['true_name']} {split} images ({pair['count']})")


def describe_symmetric(pair: dict) -> str:
    """One line for an unordered pair: ``"a <-> b: 12 confusions (7 one way, 5 the other)"``."""
    return (f"{pair['a_name']} <-> {pair['b_name']}: {pair['count']} confusions "
            f"({pair['a_to_b']} one way, {pair['b_to_a']} the other)")


def confusion_partners(cm: np.ndarray, chosen: Sequence[int],
                       partners: int = 1) -> list[list[tuple[int, int]]]:
    """Each chosen class's ``partners`` most confused classes, by confusions in both
    directions ``cm[a, b] + cm[b, a]`` (ties as in :func:`symmetric_pairs`: higher rate,
    then lower index).

    ``cm`` (C, C) counts (row = true class); ``chosen`` class indices. Returns one list
    per chosen class of ``(partner index, confusion count)``, most confused first; classes
    never confused with it are skipped, so a list may be shorter than ``partners`` or
    empty. A partner may itself be chosen.
    """
    if isinstance(partners, bool) or int(partners) != partners or partners < 1:
        raise AugmineError(f"--partners {partners!r}: choose a whole number of at least 1 "
                           "confusion partner per class")
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise AugmineError(f"confusion matrix must be square (C, C), got shape {cm.shape}")
    pairs = symmetric_pairs(cm, [str(i) for i in range(len(cm))], top=len(cm) ** 2)
    return [[(p["b"] if p["a"] == c else p["a"], p["count"]) for p in pairs
             if c in (p["a"], p["b"])][:int(partners)] for c in (int(c) for c in chosen)]
