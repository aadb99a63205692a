"""A run's reports as the confusion explorer and the comparison page show them: the weakest
classes' confusions, a confused pair's samples, suspect samples, the best checkpoint line
and a recipe comparison's table."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir


def weakest_submatrix(confusion: np.ndarray, f1: np.ndarray, k: int):
    """The ``k`` classes with the lowest F1 and their rows/columns of ``confusion``.

    ``confusion``: (C, C) counts, rows = true class, columns = predicted; ``f1``: (C,).
    Returns ``(idx (k,), sub (k, k))`` with ``idx`` ordered from weakest up.
    """
    confusion = np.asarray(confusion)
    k = max(1, min(int(k), confusion.shape[0]))
    idx = np.argsort(np.asarray(f1, dtype=float), kind="stable")[:k]
    return idx, confusion[np.ix_(idx, idx)]


def pair_samples(y_true: np.ndarray, probs: np.ndarray, a: int, b: int) -> dict[str, np.ndarray]:
    """Validation samples of classes ``a`` and ``b`` with what the model said about them.

    ``y_true``: (N,) labels; ``probs``: (N, C). Returns arrays over the selected samples:
    ``index`` (into the N val samples), ``true``, ``pred``, ``confidence`` (probability of
    ``pred``), ``correct`` and ``group``: 0 for the pair's cross-confusions (``a``
    predicted as ``b`` and ``b`` as ``a``), 1 for other misclassified samples, 2 for
    correct ones; ordered by group, then most confident first.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    sel = np.flatnonzero((y_true == a) | (y_true == b))
    pred = probs[sel].argmax(1)
    conf = probs[sel, pred].astype(float)
    correct = pred == y_true[sel]
    other = np.where(y_true[sel] == a, b, a)
    group = np.where(pred == other, 0, np.where(correct, 2, 1))
    order = np.lexsort((-conf, group))
    sel, pred, conf, correct, group = (x[order] for x in (sel, pred, conf, correct, group))
    return {"index": sel, "true": y_true[sel], "pred": pred, "confidence": conf,
            "correct": correct, "group": group}


def read_suspects(run_dir, stage: str) -> list[dict]:
    """Rows of a stage's ``suspects.csv`` (written by ``augmine mine suspects``); [] if none.

    ``run_dir``: a path or RunDir. Each row: ``name, path, split, scored,
    self_confidence (float), predicted_name, predicted_prob (float)`` (``split`` and
    ``scored`` are empty in files written before they were recorded).
    """
    import csv

    path = RunDir.of(run_dir).suspects_path(stage)
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise AugmineError(f"{path}: unreadable ({exc}); rerun `augmine mine suspects`") from None
    for r in rows:
        for k in ("self_confidence", "predicted_prob"):
            try:
                r[k] = float(r.get(k) or "nan")
            except ValueError:
                r[k] = float("nan")
    return rows


def suspects_caption(rows: Sequence[dict]) -> str:
    """What the suspects grid shows, naming the split the rows were scored on (their
    ``split`` and ``scored`` columns)."""
    splits = [s for s in dict.fromkeys(r.get("split") or "" for r in rows) if s]
    scored = [s for s in dict.fromkeys(r.get("scored") or "" for r in rows) if s]
    what = ("Images of the weak classes the model believes least (lowest probability of "
            "their own label): possible label errors or odd images")
    if not splits:
        return (f"{what}. The split they were scored on is not recorded; rerun `augmine "
                "mine suspects` to record it.")
    how = f", {' and '.join(scored)}" if scored else ""
    return (f"{what}. Scored on {' and '.join(splits)} images{how} "
            "(`augmine mine suspects`).")


def best_line(run_dir) -> str | None:
    """The run's best checkpoint as ``augmine train`` and ``augmine evaluate RUN`` name it
    (:func:`augmine.runs.factories.best_summary`), in one caption; None when the run has none
    yet (or no readable state)."""
    from augmine.runs.factories import best_summary

    try:
        best = best_summary(run_dir)
    except (AugmineError, OSError, KeyError, ValueError):
        return None
    if best is None:
        return None
    line = (f"Best checkpoint: {Path(best['checkpoint']).name}, epoch {best['epoch']} at "
            f"{best['size']} px, val top-1 {best['val_accuracy']:.2%} (what `augmine train` "
            "reports and `augmine evaluate RUN` scores).")
    o = best["overall"]
    if o is not None:
        line += (f" The best epoch at any size was {o['epoch']} at {o['size']} px "
                 f"({o['val_accuracy']:.2%} at its own size).")
    return line


def comparison_rows(results: dict) -> list[dict]:
    """The table of a recipe comparison (:func:`augmine.experiments.compare_results.load_results`), two rows per
    arm (``final`` and ``best`` model): accuracies in %, 95% intervals as text, the paired
    difference in top-1 against the first arm in points, macro F1 %, epoch, size, the
    train-val gap (points) and training images/s; None where a value does not apply."""
    m = results["metrics"]

    def pct(v):
        return None if v is None else round(100 * float(v), 2)

    def span(lo, hi, sign=""):
        return f"{100 * lo:{sign}.1f} to {100 * hi:{sign}.1f}"

    rows = []
    for i, a in enumerate(results["arms"]):
        for which in ("final", "best"):
            t1, t5 = m[f"{which}_top1"], m[f"{which}_top5"]
            final = which == "final"
            rows.append({
                "arm": a["name"], "model": which,
                "top-1 %": pct(t1["mean"][i]), "top-1 95% CI": span(t1["low"][i], t1["high"][i]),
                "top-5 %": pct(t5["mean"][i]), "top-5 95% CI": span(t5["low"][i], t5["high"][i]),
                "top-1 vs first (pts)": pct(t1["diff"][i]) if i else None,
                "difference 95% CI": span(t1["diff_low"][i], t1["diff_high"][i], "+") if i
                else "",
                "macro F1 %": pct(a.get(f"{which}_macro_f1")),
                "epoch": a["epochs"] if final else a["best_epoch"],
                "size (px)": a["final_size"] if final else a["best_size"],
                "train-val gap (pts)": pct(a.get("gap")) if final else None,
                "images/s": round(a["images_per_s"]) if final and a.get("images_per_s")
                else None})
    return rows
