"""Recipes compared on the data: the same model, seed and budget trained once per recipe
(or per strength), then one table with bootstrap intervals.

A comparison folder holds one ordinary run folder per arm (resumable with
:func:`augmine.train.phases.train_run`) and the comparison's own files::

    OUT/comparison.json            the arms and the derived config of each (what was asked)
    OUT/<arm>/                     the arm's run folder (config.yaml, history.csv, ...)
    OUT/timing/<arm>.json          training seconds and images per epoch (images/s)
    OUT/predictions/<arm>.npz      val labels and the final and best models' probabilities
    OUT/results.json               the table's numbers (what :func:`format_comparison` prints)

Running the same comparison again trains only what is missing (a finished arm is not
retrained, a killed one resumes) and prints the table again. Intervals are percentile
bootstrap intervals over val images; differences against the first arm are paired (the
same resampled images for both arms).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.analysis.mining import paired_mean_bootstrap

log = logging.getLogger("augmine")

BOOTSTRAP_SAMPLES = 2000
LEVEL = 0.95


# --------------------------------------------------------------------------- bootstrap

# --------------------------------------------------------------------------- arms and configs

@dataclass
class Arm:
    """One trained variant: ``name`` (folder name), ``recipe`` (path), ``strength`` (None = 1)."""

    name: str
    recipe: str
    strength: float | None = None


def parse_strengths(text: str | None) -> list[float] | None:
    """``"0,0.5,1"`` -> ``[0.0, 0.5, 1.0]``; None/empty -> None. One-line error otherwise."""
    if not text:
        return None
    out = []
    for part in str(text).split(","):
        try:
            value = float(part)
        except ValueError:
            raise AugmineError(f"--strength {text!r}: {part.strip()!r} is not a number; give "
                               "numbers >= 0 separated by commas, e.g. 0,0.5,1") from None
        if not np.isfinite(value) or value < 0:
            raise AugmineError(f"--strength {text!r}: {part.strip()} is not >= 0")
        out.append(value)
    return out


def split_strength(spec: str) -> tuple[str, float | None]:
    """``"tiny-imagenet-14@0.5"`` -> ``("tiny-imagenet-14", 0.5)``; no ``@`` -> ``(spec, None)``."""
    name, at, level = str(spec).rpartition("@")
    if not at:
        return str(spec), None
    return name, parse_strengths(level)[0]


def plan_arms(recipes: Sequence[str], strengths: Sequence[float] | None = None) -> list[Arm]:
    """The arms of a comparison: every recipe, at every strength when ``strengths`` is given
    (a recipe with no transforms once, since strength changes nothing there); a recipe
    written ``NAME@S`` is compared at strength S only (each recipe at its own best
    strength). The first arm is the reference the differences are taken against."""
    from augmine.augment.recipes import load_recipe

    if not recipes:
        raise AugmineError("name at least one recipe to compare, e.g. `none tiny-imagenet-14`")
    arms: list[Arm] = []
    for spec in recipes:
        name, own = split_strength(spec)
        recipe = load_recipe(name)
        stem = recipe.path.stem if recipe.path else recipe.name
        levels = [own] if own is not None else list(strengths or [None])
        if not recipe.transforms:
            levels = [None]
        for s in levels:
            arms.append(Arm(stem if s is None else f"{stem}-s{s:g}", str(recipe.path), s))
    names = [a.name for a in arms]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise AugmineError(f"{', '.join(twice)} named twice; compare each recipe (and "
                           "strength) once")
    return arms


def arm_config(base, arm: Arm, epochs: int | None = None, size: int | None = None) -> dict:
    """The training config of ``arm`` as a dict: ``base`` (a TrainConfig) with every
    phase's recipe replaced by the arm's (and its strength); with ``epochs`` and/or
    ``size`` one phase of ``size`` px (default: the last phase's) for ``epochs`` epochs
    (default: the config's total)."""
    raw = base.to_dict()
    raw.pop("data", None)
    if epochs is not None or size is not None:
        phases = [{"size": int(size or base.phases[-1].size),
                   "epochs": int(epochs or base.total_epochs)}]
    else:
        phases = [{"size": p.size, "epochs": p.epochs} for p in base.phases]
    for phase in phases:
        phase["recipe"] = arm.recipe
        if arm.strength is not None:
            phase["strength"] = arm.strength
    raw["phases"] = phases
    raw["name"] = f"{base.name}-{arm.name}"
    return raw


def default_out(arms: Sequence[Arm]) -> Path:
    """``runs/compare-<arm>-vs-<arm>...``: the default comparison folder."""
    return Path("runs") / ("compare-" + "-vs-".join(a.name for a in arms))


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


def _read_json(path: Path) -> dict | None:
    return atomic.read_json(path, "delete it to start the comparison over")


def _timing_callback(path: Path, run_dir: Path, images_per_epoch: int):
    """A Keras callback recording each epoch's training seconds (validation excluded) and
    images into ``path`` (keyed by the run's epoch number, so a resumed epoch overwrites)."""
    from augmine.runs.rundir import RunDir
    from augmine.core.runtime import import_keras

    keras = import_keras()
    run = RunDir(run_dir)

    class EpochTiming(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._train = time.perf_counter(), None

        def on_test_begin(self, logs=None):
            if getattr(self, "_train", 0) is None:
                self._train = time.perf_counter() - self._start

        def on_epoch_end(self, epoch, logs=None):
            took = self._train if self._train is not None else \
                time.perf_counter() - self._start
            rows = _read_json(path) or {}
            rows[str(len(run.read_history()))] = {"seconds": round(took, 4),
                                                  "images": int(images_per_epoch)}
            atomic.write_json(path, rows)

    return EpochTiming()


# --------------------------------------------------------------------------- running

def run_comparison(recipes: Sequence[str], data, config, out=None, epochs: int | None = None,
                   size: int | None = None, strengths: Sequence[float] | None = None,
                   progress: bool = True, echo: Callable[[str], None] | None = None,
                   samples: int = BOOTSTRAP_SAMPLES) -> dict:
    """Train one run per arm (see :func:`plan_arms`) from the same config and seed on
    ``data``, then score them (:func:`score_comparison`).

    ``config``: training config path or built-in name; ``out``: comparison folder (default
    :func:`default_out`); ``epochs``/``size``: a one-phase budget instead of the config's
    phases (:func:`arm_config`); ``echo``: where progress lines go (default: the log).
    Running it again with the same arguments trains only what is missing and re-scores;
    different arguments on the same folder are a one-line error. Returns the results dict
    (also written to ``results.json``).
    """
    from augmine.runs.config import load_config
    from augmine.data.layouts import load_index
    from augmine.core.shipped import resolve_config
    from augmine.runs.rundir import RunDir

    echo = echo or log.info
    arms = plan_arms(recipes, strengths)
    base = load_config(resolve_config(config))
    data = Path(data).expanduser().resolve()
    index = load_index(data)
    folder = ComparisonDir(out if out is not None else default_out(arms))
    configs = {a.name: arm_config(base, a, epochs, size) for a in arms}
    for raw in configs.values():
        load_config(raw)                          # every arm's config valid before training
    spec = {"data": str(data), "config": str(base.path or config), "epochs": epochs,
            "size": size, "arms": [{"name": a.name, "recipe": a.recipe,
                                    "strength": a.strength} for a in arms],
            "configs": configs}
    old = folder.read_spec()
    if old is not None and {k: old.get(k) for k in spec} != spec:
        changed = [k for k in spec if old.get(k) != spec[k]]
        raise AugmineError(f"{folder.path} holds a comparison with other settings "
                           f"({', '.join(changed)} differ); run it with its own arguments "
                           "to resume or reprint it, or choose another --out")
    if old is None:
        atomic.write_json(folder.spec_path, spec)
    from augmine.train.phases import train_run

    for i, arm in enumerate(arms, 1):
        run = RunDir(folder.run_dir(arm.name))
        state = run.read_state() if run.has_state() else None
        label = f"arm {i}/{len(arms)} {arm.name}"
        if state is not None and state.get("status") == "done":
            echo(f"{label}: already trained ({state['epochs_done']} epochs) in {run}")
            continue
        echo(f"{label}: {'resuming' if state else 'training'} into {run}")
        timing = _timing_callback(folder.timing_path(arm.name), run.path, len(index.train))
        train_run(configs[arm.name], data, run, resume=state is not None, progress=progress,
                  extra_callbacks=[timing], echo=echo)
        _free_memory()
    for arm in arms:
        _ensure_predictions(folder, arm, index)
    results = score_comparison(folder, samples=samples)
    atomic.write_json(folder.results_path, results)
    return results


def _free_memory() -> None:
    from augmine.core.runtime import import_keras

    import_keras().backend.clear_session()


def _best_epoch_size(run) -> tuple[int | None, int | None]:
    state = run.read_state()
    epoch = state.get("best_epoch")
    for row in run.read_history():
        if epoch is not None and row.get("epoch") and int(row["epoch"]) == int(epoch):
            return int(epoch), int(row["size"])
    return None, None


def _ensure_predictions(folder: ComparisonDir, arm: Arm, index) -> None:
    """Write ``predictions/<arm>.npz`` (final = last.keras at the last phase's size, best =
    best.keras at the size of its epoch) unless it is there for the run's final epoch."""
    from augmine.runs.checkpoints import evaluation_settings, load_checkpoint
    from augmine.train.evaluation import evaluate_model
    from augmine.runs.rundir import RunDir

    run = RunDir(folder.run_dir(arm.name))
    state = run.read_state()
    path = folder.predictions_path(arm.name)
    if path.is_file():
        with np.load(path) as got:
            if int(got["epochs_done"]) == int(state["epochs_done"]):
                return
    cfg = run.config
    size, batch = evaluation_settings(cfg)
    y_true, final = evaluate_model(load_checkpoint(run.checkpoint("last"), compile=False),
                                   index, size, batch)
    best_epoch, best_size = _best_epoch_size(run)
    if best_epoch is not None and run.has_checkpoint("best"):
        _, best = evaluate_model(load_checkpoint(run.checkpoint("best"), compile=False),
                                 index, best_size, batch)
    else:
        best_epoch, best_size, best = int(state["epochs_done"]), size, final
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, y_true=y_true, final=final, best=best,
                                best_epoch=best_epoch, best_size=best_size, final_size=size,
                                epochs_done=int(state["epochs_done"]))
    _free_memory()


# --------------------------------------------------------------------------- scoring

def _topk_hits(y_true: np.ndarray, probs: np.ndarray, k: int) -> np.ndarray:
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    return (top == y_true[:, None]).any(axis=1).astype(np.float64)


def score_comparison(folder, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict:
    """The comparison's numbers from its folder (no training, no Keras).

    Per arm: final and best val top-1 and top-5 with bootstrap intervals and paired
    differences against the first arm, final macro F1 (sklearn), the train-minus-val gap
    (the last epoch's training accuracy on augmented batches, as Keras reports it, minus
    the final val top-1), images/s (training images over training seconds, validation
    excluded, start-up included), epochs, best epoch and its size, and the val curve.
    Returns ``{"arms": [...], "metrics": [...], "samples", "level", "num_val"}``.
    """
    from sklearn.metrics import f1_score

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
            hits = np.stack([_topk_hits(y, p[which], k) for p in preds])
            boot = paired_mean_bootstrap(hits, samples=samples, seed=seed)
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
        timing = _read_json(folder.timing_path(arm["name"])) or {}
        seconds = sum(t["seconds"] for t in timing.values())
        images = sum(t["images"] for t in timing.values())
        rows.append({
            "name": arm["name"], "recipe": arm["recipe"], "strength": arm["strength"],
            "epochs": len(history), "best_epoch": int(p["best_epoch"]),
            "best_size": int(p["best_size"]), "final_size": int(p["final_size"]),
            **{f"{which}_macro_f1": float(f1_score(y, p[which].argmax(1), average="macro",
                                                   labels=np.arange(num_classes),
                                                   zero_division=0))
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


def is_comparison(path) -> bool:
    """Whether ``path`` is a comparison folder (holds ``comparison.json``)."""
    return ComparisonDir(path).spec_path.is_file()


__all__ = ["Arm", "ComparisonDir", "arm_config", "comparison_curves", "default_out",
           "format_comparison", "is_comparison", "load_results",
           "parse_strengths", "plan_arms", "run_comparison", "score_comparison"]
