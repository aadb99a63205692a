"""Suspect training samples: the images of chosen classes the model believes least
(lowest self-confidence, as in confident learning), for a person to review."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from augmine.analysis._internal import labels_1d


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
