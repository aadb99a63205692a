"""A recipe comparison's folder and its numbers: :class:`ComparisonDir` (the layout, in
:mod:`augmine.experiments.compare`), :func:`score_comparison` (top-1/top-5 with paired
bootstrap intervals, macro F1, the train-val gap, images/s; no training, no Keras) and
:func:`format_comparison` (the table)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from augmine.analysis.bootstrap import mean_intervals
from augmine.analysis.metrics import f1_scores, top_k_hits
from augmine.core import atomic
from augmine.core.errors import AugmineError

BOOTSTRAP_SAMPLES = 2000
LEVEL = 0.95


# --------------------------------------------------------------------------- the folder

class ComparisonDir:
    """The comparison folder (layout in the module docstring)."""

    def __init__(self, path):
        self.path = Path(path).expanduser().resolve()

    @property
    def spec_path(self) -> Path:
        return self.path / "comparison.json"

    @property
    def results_path(self) -> Path:
        return self.path / "results.json"

    def run_dir(self, arm: str) -> Path:
        return self.path / arm

    def timing_path(self, arm: str) -> Path:
        return self.path / "timing" / f"{arm}.json"

    def predictions_path(self, arm: str) -> Path:
        return self.path / "predictions" / f"{arm}.npz"

    def read_spec(self) -> dict | None:
        return _read_json(self.spec_path)

    def read_results(self) -> dict | None:
        return _read_json(self.results_path)

    def read_timing(self, arm: str) -> dict | None:
        return _read_json(self.timing_path(arm))


def _read_json(path: Path) -> dict | None:
    return atomic.read_json(path, "delete it to start the comparison over")


def is_comparison(path) -> bool:
    """Whether ``path`` is a comparison folder (holds ``comparison.json``)."""
    return ComparisonDir(path).spec_path.is_file()


# --------------------------------------------------------------------------- scoring

def score_comparison(folder, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict:
    """The comparison's numbers from its folder (no training, no Keras).

    Per arm: final and best val top-1 and top-5 with bootstrap intervals and paired
    differences against the first arm, final macro F1 (sklearn), the train-minus-val gap
    (the last epoch's training accuracy on augmented batches, as Keras reports it, minus
    the final val top-1), images/s (training images over training seconds, validation
    excluded, start-up included), epochs, best epoch and its size, and the val curve.
    Returns ``{"arms": [...], "metrics": [...], "samples", "level", "num_val"}``.
    """
    from augmine.runs.rundir import RunDir

    folder = folder if isinstance(folder, ComparisonDir) else ComparisonDir(folder)
    spec = folder.read_spec()
    if spec is None:
        raise AugmineError(f"{folder.path}: no comparison.json; run `augmine recipe compare` "
                           "first")
    arms = spec["arms"]
    preds = []
    for arm in arms:
        path = folder.predictions_path(arm["name"])
        if not path.is_file():
            raise AugmineError(f"{path} is missing; run the comparison again to finish it")
        with np.load(path) as got:
            preds.append({k: got[k] for k in got.files})
    y = preds[0]["y_true"]
    if any(len(p["y_true"]) != len(y) or (p["y_true"] != y).any() for p in preds):
        raise AugmineError(f"{folder.path}: the arms were scored on different val images; "
                           "delete predictions/ and run the comparison again")
    metrics = {}
    for which in ("final", "best"):
        for k in (1, 5):
            hits = np.stack([top_k_hits(y, p[which], k) for p in preds])
            boot = mean_intervals(hits, reps=samples, seed=seed, level=LEVEL)
            metrics[f"{which}_top{k}"] = {key: [float(v) for v in val]
                                          for key, val in boot.items()}
    rows = []
    num_classes = preds[0]["final"].shape[1]
    for arm, p in zip(arms, preds):
        run = RunDir(folder.run_dir(arm["name"]))
        history = run.read_history()
        last = history[-1] if history else {}
        train_acc = float(last["accuracy"]) if last.get("accuracy") else None
        final_top1 = float(np.mean(p["final"].argmax(1) == y))
        timing = folder.read_timing(arm["name"]) or {}
        seconds = sum(t["seconds"] for t in timing.values())
        images = sum(t["images"] for t in timing.values())
        rows.append({
            "name": arm["name"], "recipe": arm["recipe"], "strength": arm["strength"],
            "epochs": len(history), "best_epoch": int(p["best_epoch"]),
            "best_size": int(p["best_size"]), "final_size": int(p["final_size"]),
            **{f"{which}_macro_f1": float(f1_scores(y, p[which].argmax(1), num_classes).mean())
               for which in ("final", "best")},
            "train_accuracy": train_acc,
            "gap": None if train_acc is None else train_acc - final_top1,
            "images_per_s": images / seconds if seconds > 0 else None,
            "curve": [{"epoch": int(r["epoch"]), "size": int(r["size"]),
                       "accuracy": float(r["accuracy"]) if r.get("accuracy") else None,
                       "val_accuracy": float(r["val_accuracy"]) if r.get("val_accuracy")
                       else None} for r in history],
        })
    return {"arms": rows, "metrics": metrics, "samples": samples, "level": LEVEL,
            "num_val": int(len(y)), "data": spec["data"], "config": spec["config"],
            "epochs": spec.get("epochs"), "size": spec.get("size")}


def load_results(folder) -> dict:
    """``results.json`` of a comparison folder (re-scored from its files when missing)."""
    folder = folder if isinstance(folder, ComparisonDir) else ComparisonDir(folder)
    return folder.read_results() or score_comparison(folder)


# --------------------------------------------------------------------------- the table

def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _ci(m: dict, i: int, diff: bool = False) -> str:
    if diff:
        return f"{100 * m['diff'][i]:+.1f} [{100 * m['diff_low'][i]:+.1f}, " \
               f"{100 * m['diff_high'][i]:+.1f}]"
    return f"{100 * m['mean'][i]:.1f} [{100 * m['low'][i]:.1f}, {100 * m['high'][i]:.1f}]"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(head)]
    fmt = lambda r: "  ".join(c.ljust(w) if j < 2 else c.rjust(w)  # noqa: E731
                              for j, (c, w) in enumerate(zip(r, widths))).rstrip()
    return [fmt(head), "-" * len(fmt(head))] + [fmt(r) for r in rows]


def format_comparison(results: dict) -> str:
    """The comparison as text: one row per arm (accuracies in % with 95% bootstrap
    intervals), then the paired differences against the first arm."""
    m, arms = results["metrics"], results["arms"]
    budget = (f"one {results['size'] or arms[0]['final_size']} px phase of "
              f"{arms[0]['epochs']} epochs" if results.get("epochs") or results.get("size")
              else "the config's phases")
    lines = [f"{len(arms)} arms, same model and seed, {budget}; {results['num_val']} val "
             f"images of {results['data']}; [{100 * results['level']:.0f}% bootstrap "
             f"interval over val images, {results['samples']} resamples]", ""]
    rows = []
    for i, a in enumerate(arms):
        rows.append([a["name"], "final", _ci(m["final_top1"], i), _ci(m["final_top5"], i),
                     _pct(a["final_macro_f1"]), f"{a['epochs']} ({a['final_size']})",
                     "-" if a["gap"] is None else f"{100 * a['gap']:+.1f}",
                     "-" if a["images_per_s"] is None else f"{a['images_per_s']:.0f}"])
        rows.append(["", "best", _ci(m["best_top1"], i), _ci(m["best_top5"], i),
                     _pct(a["best_macro_f1"]), f"{a['best_epoch']} ({a['best_size']})", "",
                     ""])
    lines += _table(["arm", "model", "top-1 % [95% CI]", "top-5 % [95% CI]", "macro F1 %",
                     "epoch (px)", "train-val gap", "images/s"], rows)
    if len(arms) > 1:
        lines += ["", f"difference against {arms[0]['name']} in points (paired bootstrap, "
                  "95% CI):"]
        rows = []
        for i, a in enumerate(arms[1:], 1):
            rows.append([a["name"], "final", _ci(m["final_top1"], i, True),
                         _ci(m["final_top5"], i, True)])
            rows.append(["", "best", _ci(m["best_top1"], i, True), _ci(m["best_top5"], i, True)])
        lines += _table(["arm", "model", "top-1", "top-5"], rows)
    lines += ["", "final: last epoch's model; best: the epoch with the best val top-1. "
              "train-val gap: last epoch's training accuracy (augmented batches) minus final "
              "val top-1; images/s: training only, start-up included"]
    return "\n".join(lines)


def comparison_curves(folder) -> dict[str, list[dict]]:
    """{arm name: history rows (epoch, size, accuracy, val_accuracy)} for plotting."""
    return {a["name"]: a["curve"] for a in load_results(folder)["arms"]}

__all__ = ["BOOTSTRAP_SAMPLES", "ComparisonDir", "comparison_curves", "format_comparison",
           "is_comparison", "load_results", "score_comparison"]
