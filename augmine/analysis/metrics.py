"""Per-class numbers, pure numpy: scores, confusion matrices, top-1 and top-k accuracy (the
one F1, the one macro F1 and the one top-1; every other module calls these), the confusion
pairs of a confusion matrix, suspect training samples, and the input checks shared by the
analysis modules (one-line errors for arrays of the wrong shape).

Pure numpy over label vectors ``y_true``/``y_pred`` (N,) int and class probabilities
``probs`` (N, C).

Macro averages (:func:`macro_f1`, :func:`macro_mean`, the ``macro`` row of
:func:`per_class_report`) are means over the classes present in ``y_true`` (support > 0);
a class absent from the labels measured has no F1 of its own (a prediction of it is already
a miss of the true class) and is left out, so a bootstrap resample or a measurement half
that lacks a class is not pulled towards 0 by it. On a split that holds every class this
is the mean over all classes. F1, precision and recall come from one count of true positives per class
(:func:`class_scores`), hand-written because the bootstrap calls it thousands of times per
round (scikit-learn's ``precision_recall_fscore_support`` gives the same numbers, ~100x
slower); top-k follows scikit-learn's ``top_k_accuracy_score`` (ties: the higher class index
ranks first) but keeps the per-image hits the paired bootstrap needs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from augmine.core.errors import AugmineError


# =========================================================================== input checks
# Input checks shared by the analysis modules (one-line errors for arrays of the wrong shape).

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


# =========================================================================== metrics

def class_scores(y_true, y_pred, num_classes: int) -> dict[str, np.ndarray]:
    """``{"precision", "recall", "f1", "support"}``, each (C,): per-class scores, 0 where a
    class has no predicted (precision), no true (recall) or neither (F1) sample (as
    scikit-learn's ``zero_division=0``); labels outside ``0..C-1`` are ignored."""
    y_true, y_pred = labels_1d(y_true, "y_true"), labels_1d(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise AugmineError(f"y_true has {len(y_true)} labels but y_pred {len(y_pred)}")
    count = lambda y: np.bincount(y, minlength=num_classes)[:num_classes]  # noqa: E731
    tp = count(y_true[y_true == y_pred]).astype(np.float64)
    true, pred = count(y_true), count(y_pred)
    ratio = lambda a, b: np.where(b > 0, a / np.maximum(b, 1), 0.0)  # noqa: E731
    return {"precision": ratio(tp, pred), "recall": ratio(tp, true),
            "f1": ratio(2.0 * tp, true + pred), "support": true}


def f1_scores(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(C,) F1 per class (0 where a class has no true and no predicted sample)."""
    return class_scores(y_true, y_pred, num_classes)["f1"]


def macro_mean(values, support, among=None) -> float:
    """Mean of per-class ``values`` (C,) over the classes present (``support`` (C,) > 0) and,
    given ``among`` ((C,) bool or class indices), in it; NaN when no class qualifies."""
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(support) > 0
    if among is not None:
        among = np.asarray(among)
        if among.dtype != bool:
            among = np.isin(np.arange(len(values)), among.astype(np.int64))
        mask &= among
    return float(values[mask].mean()) if mask.any() else float("nan")


def macro_f1(y_true, y_pred, num_classes: int) -> float:
    """Macro F1: the mean F1 over the classes present in ``y_true`` (see the module's
    docstring); 0.0 when ``y_true`` is empty."""
    scores = class_scores(y_true, y_pred, num_classes)
    value = macro_mean(scores["f1"], scores["support"])
    return 0.0 if np.isnan(value) else value


def top1_hits(y_true, probs_or_pred) -> np.ndarray:
    """(N,) float64: 1 where the prediction is the true class, else 0. ``probs_or_pred``:
    (N, C) probabilities (their argmax) or (N,) predicted labels."""
    y_true, given = labels_1d(y_true, "y_true"), np.asarray(probs_or_pred)
    if len(given) != len(y_true):
        raise AugmineError(f"y_true has {len(y_true)} labels but {len(given)} predictions")
    if given.ndim == 2:
        return (given.argmax(axis=1) == y_true).astype(np.float64)
    return (labels_1d(given, "y_pred") == y_true).astype(np.float64)


def top1(y_true, probs_or_pred) -> float:
    """Top-1 accuracy (share of right predictions; see :func:`top1_hits`); 0.0 when empty."""
    hits = top1_hits(y_true, probs_or_pred)
    return float(hits.mean()) if len(hits) else 0.0


def per_class_report(y_true, y_pred, class_names: Sequence[str], probs=None,
                     class_ids: Sequence[str] | None = None) -> dict:
    """Per-class precision, recall, F1 and support plus the overall numbers.

    ``y_true``, ``y_pred``: (N,) int class indices; ``class_names``: C names in label order;
    ``probs``: optional (N, C) class probabilities (for top-5). Classes absent from both
    vectors get 0 for every score (``zero_division=0``); the ``macro`` means are over the
    classes present in ``y_true`` (:func:`macro_mean`).

    Returns ``{"num_samples", "accuracy", "top5_accuracy" (None without probs),
    "macro": {precision, recall, f1}, "weighted": {...}, "macro_f1",
    "per_class": [{index, class_id, name, precision, recall, f1, support}, ...]}``.
    """
    y_true, y_pred = labels_1d(y_true, "y_true"), labels_1d(y_pred, "y_pred")
    num = len(class_names)
    ids = list(class_ids) if class_ids is not None else list(class_names)
    scores = class_scores(y_true, y_pred, num)
    p, r, f, s = (scores[k] for k in ("precision", "recall", "f1", "support"))
    avgs = {"macro": {k: float(np.nan_to_num(macro_mean(scores[k], s)))
                      for k in ("precision", "recall", "f1")},
            "weighted": {k: float(np.average(scores[k], weights=s)) if s.sum() else 0.0
                         for k in ("precision", "recall", "f1")}}
    top5 = None
    if probs is not None:
        probs = np.asarray(probs)
        if probs.shape != (len(y_true), num):
            raise AugmineError(f"probs has shape {probs.shape}; expected ({len(y_true)}, {num})")
        top5 = top_k_accuracy(y_true, probs, k=5)
    per_class = [{"index": i, "class_id": ids[i], "name": class_names[i],
                  "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                  "support": int(s[i])} for i in range(num)]
    return {"num_samples": int(len(y_true)),
            "accuracy": top1(y_true, y_pred),
            "top5_accuracy": top5, "macro": avgs["macro"], "weighted": avgs["weighted"],
            "macro_f1": avgs["macro"]["f1"], "per_class": per_class}


def top_k_hits(y_true, probs, k: int = 5) -> np.ndarray:
    """(N,) float64: 1 where the true class is among the ``k`` most probable of ``probs``
    (N, C), else 0 (every sample hits when ``k >= C``)."""
    y_true = labels_1d(y_true, "y_true")
    probs = np.asarray(probs, dtype=np.float64)
    if k >= probs.shape[1]:
        return np.ones(len(y_true))
    top = np.argsort(probs, axis=1, kind="mergesort")[:, ::-1][:, :k]
    return (top == y_true[:, None]).any(axis=1).astype(np.float64)


def top_k_accuracy(y_true, probs, k: int = 5) -> float:
    """Share of samples whose true class is among the ``k`` most probable ((N,), (N, C) -> float)."""
    hits = top_k_hits(y_true, probs, k)
    return float(hits.mean()) if len(hits) else 0.0


def f1_vector(report: dict) -> np.ndarray:
    """(C,) F1 per class from a :func:`per_class_report` (or a stage report) dict."""
    return np.array([c["f1"] for c in report["per_class"]], dtype=np.float64)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    return sk_confusion_matrix(labels_1d(y_true, "y_true"), labels_1d(y_pred, "y_pred"),
                               labels=np.arange(num_classes)).astype(np.int64)


# =========================================================================== pairs
# Confusion pairs from a (C, C) confusion matrix (row = true class): the directed
# confusions, the unordered pairs (both directions summed) and each class's confusion
# partners (for pairs rounds). Pure numpy; items are JSON-ready dicts.

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


# =========================================================================== suspects
# Suspect training samples: the images of chosen classes the model believes least
# (lowest self-confidence, as in confident learning), for a person to review.

def self_confidence(labels, probs) -> np.ndarray:
    """(N,) predicted probability of each sample's own label (confident learning's self-confidence)."""
    labels = labels_1d(labels, "labels")
    probs = np.asarray(probs)
    return probs[np.arange(len(labels)), labels].astype(np.float64)


def suspect_samples(labels, probs, classes: Sequence[int], per_class: int = 10,
                    paths=None, class_names: Sequence[str] | None = None) -> list[dict]:
    """Training samples of ``classes`` the model believes least: lowest self-confidence first.

    ``labels`` (N,) int, ``probs`` (N, C); ``per_class`` samples per class, grouped by
    class in the order of ``classes``. Each item: ``{index, path, label, name,
    self_confidence, predicted, predicted_name, predicted_prob}``. Likely label errors or
    odd images, for a person to review.
    """
    labels = labels_1d(labels, "labels")
    probs = np.asarray(probs)
    conf = self_confidence(labels, probs)
    pred = probs.argmax(axis=1)
    out = []
    for c in classes:
        idx = np.flatnonzero(labels == int(c))
        idx = idx[np.lexsort((idx, conf[idx]))][:per_class]
        for i in idx:
            p = int(pred[i])
            out.append({"index": int(i), "path": None if paths is None else str(paths[i]),
                        "label": int(c), "name": None if class_names is None else class_names[c],
                        "self_confidence": float(conf[i]), "predicted": p,
                        "predicted_name": None if class_names is None else class_names[p],
                        "predicted_prob": float(probs[i, p])})
    return out
