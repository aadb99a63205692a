"""The plots of a stage report: per-class F1 (``f1.png``) and the confusions of the weakest
classes (``confusion.png``), written atomically with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from augmine.core import atomic


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_f1(report: dict, path) -> Path:
    """Bar chart of per-class F1, sorted ascending; the plan's chosen classes in red."""
    plt = _pyplot()
    pcs = sorted(report["per_class"], key=lambda c: (c["f1"], c["index"]))
    chosen = set((report.get("plan") or {}).get("weak_names") or [])
    num = len(pcs)
    fig, ax = plt.subplots(figsize=(min(16, max(6, 0.3 * num + 2)), 4.5))
    ax.bar(range(num), [c["f1"] for c in pcs],
           color=["tab:red" if c["name"] in chosen else "tab:blue" for c in pcs])
    if num <= 40:
        ax.set_xticks(range(num), [c["name"] for c in pcs], rotation=60, ha="right", fontsize=8)
    else:
        ax.set_xlabel("classes, weakest to strongest")
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.axhline(report["macro_f1"], color="gray", ls="--", lw=1, label="macro F1")
    ax.set_title(f"{report['stage']}: per-class F1 (accuracy {report['accuracy']:.1%})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return Path(path)


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], order: Sequence[int], path,
                   max_classes: int = 15) -> Path:
    """Heatmap (row-normalised) of the weakest classes and the classes they are confused with."""
    plt = _pyplot()
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    keep: list[int] = []
    for i in order:   # weakest first, each followed by its main confusion
        for j in (i, int(off[i].argmax()) if off[i].any() else i):
            if j not in keep and len(keep) < max_classes:
                keep.append(j)
        if len(keep) >= max_classes:
            break
    sub = cm[np.ix_(keep, keep)].astype(np.float64)
    rates = sub / np.maximum(cm[keep].sum(axis=1, keepdims=True), 1)
    n = len(keep)
    fig, ax = plt.subplots(figsize=(max(5, 0.55 * n + 3), max(4, 0.5 * n + 2)))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    names = [class_names[i] for i in keep]
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    for r in range(n):
        for c in range(n):
            if sub[r, c]:
                ax.text(c, r, f"{rates[r, c]:.0%}", ha="center", va="center", fontsize=7,
                        color="white" if rates[r, c] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (share of its val images)")
    ax.set_title("confusions of the weakest classes")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return Path(path)
