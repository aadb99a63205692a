"""What a mining round changed: before/after/control on the measurement images.

:func:`round_metrics` scores one prediction vector (chosen-class F1, partner F1, other F1,
top-1, macro F1); :func:`effect_table` gives before, after, control and their differences
with paired bootstrap intervals (:mod:`augmine.analysis.bootstrap`); :func:`measurable_losses`
names every row whose interval lies below zero, which :func:`effect_warning` puts into the
verdict line (:func:`effect_note`: an overall fall within the noise);
:func:`f1_losses` lists the classes that lost most.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from augmine.analysis._internal import labels_1d
from augmine.analysis.bootstrap import paired_bootstrap, percentile_interval
from augmine.analysis.metrics import class_scores, macro_mean, top1

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
    scores = class_scores(y_true, y_pred, num_classes)
    f1, support = scores["f1"], scores["support"]
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
