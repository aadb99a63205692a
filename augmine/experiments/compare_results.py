"""A recipe comparison's folder and its numbers: :class:`ComparisonDir` (the layout, in
:mod:`augmine.experiments.compare`), :func:`score_comparison` (top-1/top-5 with paired
bootstrap intervals, over val images or, with several training seeds, over seeds and
images together; macro F1, the train-val gap, images/s; no training, no Keras) and
:func:`format_comparison` (the table)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from augmine.analysis.effects import mean_intervals, seed_effect
from augmine.analysis.metrics import macro_f1, top1, top_k_hits
from augmine.analysis.plans import selection_split
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

    @staticmethod
    def run_name(arm: str, seed: int = 0) -> str:
        """The folder name of ``arm`` trained at config seed + ``seed``: the arm's name for
        seed 0 (as comparisons without seeds wrote it), ``<arm>-seed<S>`` otherwise."""
        return arm if int(seed) == 0 else f"{arm}-seed{int(seed)}"

    def log_path(self, run: str) -> Path:
        return self.path / "logs" / f"{run}.log"

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

def arm_intervals(hits: np.ndarray, samples: int, seed: int) -> dict:
    """``hits`` (A arms, S seeds, N images) -> ``{"mean", "low", "high", "diff",
    "diff_low", "diff_high"}`` (A,) lists as :func:`mean_intervals` gives them (one seed:
    exactly that), the intervals from the two-stage bootstrap over seeds and images
    (:func:`seed_effect`) when S > 1; plus ``"per_seed"`` (A, S) each seed's mean."""
    n_arms, n_seeds = hits.shape[:2]
    per_seed = hits.mean(axis=2)
    if n_seeds == 1:
        out = {k: [float(x) for x in v]
               for k, v in mean_intervals(hits[:, 0], reps=samples, seed=seed,
                                          level=LEVEL).items()}
        return {**out, "per_seed": per_seed.tolist()}
    out = {k: [] for k in ("mean", "low", "high", "diff", "diff_low", "diff_high")}
    for a in range(n_arms):
        own = seed_effect([(h,) for h in hits[a]], effect=np.mean, reps=samples, seed=seed,
                          level=LEVEL)
        out["mean"].append(own["value"]), out["low"].append(own["lo"])
        out["high"].append(own["hi"])
        diff = {"value": 0.0, "lo": 0.0, "hi": 0.0} if a == 0 else \
            seed_effect(list(zip(hits[a], hits[0])), reps=samples, seed=seed, level=LEVEL)
        out["diff"].append(diff["value"]), out["diff_low"].append(diff["lo"])
        out["diff_high"].append(diff["hi"])
    return {**{k: [float(x) for x in v] for k, v in out.items()},
            "per_seed": per_seed.tolist()}


def score_comparison(folder, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                     seeds: int = 1, measure_half: bool = False) -> dict:
    """The comparison's numbers from its folder (no training, no Keras).

    Per arm: final and best val top-1 and top-5 with bootstrap intervals and paired
    differences against the first arm, final macro F1 (sklearn), the train-minus-val gap
    (the last epoch's training accuracy on augmented batches, as Keras reports it, minus
    the final val top-1), images/s (training images over training seconds, validation
    excluded, start-up included), epochs, best epoch and its size, and the val curve.
    ``seeds`` > 1: every arm's runs at config seed + 0..seeds-1, the intervals over seeds
    and images together (two-stage bootstrap), macro F1 and gap averaged over the seeds,
    each metric's per-seed values in ``per_seed`` (the seed-to-seed spread).
    ``measure_half``: scored on the measurement half of val only
    (:func:`~augmine.analysis.plans.selection_split` with the config's seed: the images
    ``recipe tailor --half selection`` never read).
    Returns ``{"arms": [...], "metrics": [...], "samples", "level", "num_val", "seeds",
    "half", "images" (the val rows scored)}``.
    """
    from augmine.runs.rundir import RunDir

    folder = folder if isinstance(folder, ComparisonDir) else ComparisonDir(folder)
    spec = folder.read_spec()
    if spec is None:
        raise AugmineError(f"{folder.path}: no comparison.json; run `augmine recipe compare` "
                           "first")
    arms = spec["arms"]
    names = [[folder.run_name(arm["name"], s) for s in range(int(seeds))] for arm in arms]
    preds = [[_predictions(folder, name) for name in runs] for runs in names]   # (A, S)
    y = preds[0][0]["y_true"]
    if any(len(p["y_true"]) != len(y) or (p["y_true"] != y).any() for ps in preds for p in ps):
        raise AugmineError(f"{folder.path}: the arms were scored on different val images; "
                           "delete predictions/ and run the comparison again")
    # the split mining uses, seeded by the arms' config seed (0 when the spec names none)
    split_seed = int(next(iter((spec.get("configs") or {}).values()), {}).get("seed", 0))
    keep = selection_split(y, split_seed)[1] if measure_half else np.arange(len(y))
    metrics = {}
    for which in ("final", "best"):
        for k in (1, 5):
            hits = np.array([[top_k_hits(y, p[which], k)[keep] for p in ps] for ps in preds])
            metrics[f"{which}_top{k}"] = arm_intervals(hits, samples, seed)
    rows = []
    num_classes = preds[0][0]["final"].shape[1]
    yk = y[keep]
    for arm, runs, ps in zip(arms, names, preds):
        p = ps[0]
        history = RunDir(folder.run_dir(runs[0])).read_history()
        gaps = []
        for name, q in zip(runs, ps):
            last = (RunDir(folder.run_dir(name)).read_history() or [{}])[-1]
            if last.get("accuracy"):
                gaps.append(float(last["accuracy"]) - top1(y, q["final"]))
        train_acc = float(history[-1]["accuracy"]) if history and history[-1].get("accuracy") \
            else None
        timing = [t for name in runs for t in (folder.read_timing(name) or {}).values()]
        seconds = sum(t["seconds"] for t in timing)
        images = sum(t["images"] for t in timing)
        rows.append({
            "name": arm["name"], "recipe": arm["recipe"], "strength": arm["strength"],
            "runs": runs, "epochs": len(history), "best_epoch": int(p["best_epoch"]),
            "best_size": int(p["best_size"]), "final_size": int(p["final_size"]),
            **{f"{which}_macro_f1": float(np.mean([
                macro_f1(yk, q[which].argmax(1)[keep], num_classes) for q in ps]))
               for which in ("final", "best")},
            "train_accuracy": train_acc,
            "gap": float(np.mean(gaps)) if gaps else None,
            "images_per_s": images / seconds if seconds > 0 else None,
            "curve": [{"epoch": int(r["epoch"]), "size": int(r["size"]),
                       "accuracy": float(r["accuracy"]) if r.get("accuracy") else None,
                       "val_accuracy": float(r["val_accuracy"]) if r.get("val_accuracy")
                       else None} for r in history],
        })
    return {"arms": rows, "metrics": metrics, "samples": samples, "level": LEVEL,
            "num_val": int(len(keep)), "val_images": int(len(y)), "seeds": int(seeds),
            "half": "measurement" if measure_half else "all", "split_seed": split_seed,
            "images": keep.tolist(), "data": spec["data"], "config": spec["config"],
            "epochs": spec.get("epochs"), "size": spec.get("size")}


def _predictions(folder: ComparisonDir, run: str) -> dict:
    path = folder.predictions_path(run)
    if not path.is_file():
        raise AugmineError(f"{path} is missing; run the comparison again to finish it")
    with np.load(path) as got:
        return {k: got[k] for k in got.files}


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


def _spread(m: dict, i: int) -> str:
    per_seed = 100 * np.asarray(m["per_seed"][i])
    return f"{per_seed.min():.1f}-{per_seed.max():.1f} ({per_seed.std(ddof=1):.1f})"


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
    seeds = int(results.get("seeds", 1))
    images = f"{results['num_val']} val images" if results.get("half", "all") == "all" else \
        (f"the measurement half of val ({results['num_val']} of {results['val_images']} "
         f"images, split seed {results['split_seed']})")
    if seeds == 1:
        head = (f"{len(arms)} arms, same model and seed, {budget}; {images} of "
                f"{results['data']}; [{100 * results['level']:.0f}% bootstrap interval over "
                f"val images, {results['samples']} resamples]")
    else:
        head = (f"{len(arms)} arms x {seeds} training seeds (config seed + 0..{seeds - 1}: "
                f"init, sampling, augmentation), {budget}; {images} of {results['data']}; "
                f"[{100 * results['level']:.0f}% two-stage bootstrap interval over seeds and "
                f"val images, {results['samples']} resamples]")
    lines = [head, ""]
    rows = []
    for i, a in enumerate(arms):
        spread = [_spread(m["final_top1"], i)] if seeds > 1 else []
        rows.append([a["name"], "final", _ci(m["final_top1"], i), *spread,
                     _ci(m["final_top5"], i),
                     _pct(a["final_macro_f1"]), f"{a['epochs']} ({a['final_size']})",
                     "-" if a["gap"] is None else f"{100 * a['gap']:+.1f}",
                     "-" if a["images_per_s"] is None else f"{a['images_per_s']:.0f}"])
        spread = [_spread(m["best_top1"], i)] if seeds > 1 else []
        rows.append(["", "best", _ci(m["best_top1"], i), *spread, _ci(m["best_top5"], i),
                     _pct(a["best_macro_f1"]), f"{a['best_epoch']} ({a['best_size']})", "",
                     ""])
    lines += _table(["arm", "model", "top-1 % [95% CI]",
                     *(["top-1 over seeds"] if seeds > 1 else []), "top-5 % [95% CI]",
                     "macro F1 %", "epoch (px)", "train-val gap", "images/s"], rows)
    if len(arms) > 1:
        how = "paired bootstrap" if seeds == 1 else \
            f"paired by seed, two-stage bootstrap over {seeds} seeds and images"
        lines += ["", f"difference against {arms[0]['name']} in points ({how}, 95% CI):"]
        rows = []
        for i, a in enumerate(arms[1:], 1):
            rows.append([a["name"], "final", _ci(m["final_top1"], i, True),
                         _ci(m["final_top5"], i, True)])
            rows.append(["", "best", _ci(m["best_top1"], i, True), _ci(m["best_top5"], i, True)])
        lines += _table(["arm", "model", "top-1", "top-5"], rows)
    lines += ["", "final: last epoch's model; best: the epoch with the best val top-1. "
              "train-val gap: last epoch's training accuracy (augmented batches) minus final "
              "val top-1; images/s: training only, start-up included"]
    if seeds > 1:
        lines += ["top-1 over seeds: the lowest and highest seed's top-1 (sd); macro F1 and "
                  "train-val gap: means over the seeds; epoch (px): seed 0's run"]
    return "\n".join(lines)


def comparison_curves(folder) -> dict[str, list[dict]]:
    """{arm name: history rows (epoch, size, accuracy, val_accuracy)} for plotting."""
    return {a["name"]: a["curve"] for a in load_results(folder)["arms"]}

__all__ = ["BOOTSTRAP_SAMPLES", "ComparisonDir", "arm_intervals", "comparison_curves", "format_comparison",
           "is_comparison", "load_results", "score_comparison"]
