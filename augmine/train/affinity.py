"""Affinity of a recipe on a trained run, per class and per transform: the measurement, its
statistics and the tailor rule (pure numpy), the tailored recipe, and one saved result as
the app's Affinity page shows it. The files are :class:`~augmine.runs.rundir.RunDir`'s.

:func:`measure_affinity` loads the checkpoint ``augmine evaluate RUN`` uses (at the run's
evaluation size), augments every val image in this process with each top-level transform
of the recipe alone (forced to fire: ``p: 1``; a container such as OneOf counts as one
transform and picks among its children as written) at the recipe's own ranges, and with
the whole recipe as written, ``draws`` times each (seeded), and predicts uint8 batches
(the model rescales itself). A transform that follows a size-setting crop in the recipe
runs on the phase-size image, as in training. The statistics and the tailor rule
(:func:`affinity_table`, :func:`tailor_overrides`) are pure numpy; the files go to
``RunDir.affinity_dir``:
``affinity.json`` (full results, reused while checkpoint, recipe, draws and seed are
unchanged), ``affinity.csv`` (one row per class and column) and ``affinity.png`` (heatmap).

:func:`tailor_recipe` writes the input recipe plus ``classes:`` overrides from the rule.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from augmine.analysis.effects import mean_intervals
from augmine.analysis.metrics import top1_hits
from augmine.augment.compose import build_compose
from augmine.augment.recipes import as_recipe, dump_recipe, Recipe, sets_size
from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.core.runtime import resolve_recipe
from augmine.runs.rundir import RunDir


# =========================================================================== statistics and the tailor rule
# Affinity statistics and the tailor rule (pure numpy; no model, no files).
#
# Affinity (Gontijo-Lopes et al., ICLR 2021) is the clean model's accuracy on augmented
# validation images. Per class and per transform, the *drop* is clean accuracy minus
# augmented accuracy; :func:`affinity_table` gives it with bootstrap 95% intervals
# (val images resampled within the class, paired across clean and augmented, by
# :func:`augmine.analysis.effects.mean_intervals`).
#
# The tailor rule (:func:`tailor_overrides`), per class ``c`` and column ``t`` (a top-level
# transform of the recipe, or the whole recipe):
#
# - ``excess = drop(c, t) - drop(others, t)``, where ``drop(others, t)`` is the mean drop over
# the other classes' val images;
# - ``t`` is switched off for ``c`` (``without: [t]``) when the bootstrap 95% interval of
# ``excess`` (class ``c``'s images resampled; the others' mean, over many more images, taken
# as fixed) lies above zero **and** ``excess >= margin`` (default 0.10: ten points of
# accuracy);
# - when the same holds for the whole recipe, ``c`` gets ``strength: 0.5`` (its phase strength
# halved) instead of losing a transform it was not singled out for.
#
# Every override carries a ``why:`` that quotes the numbers, e.g. ``affinity:
# RandomResizedCrop costs this class 31 points [22, 40] against 9 [6, 12] for the others``.

WHOLE = "whole recipe"     # the name of the last column: the recipe as written
DEFAULT_MARGIN = 0.10
TAILORED_STRENGTH = 0.5


def affinity_table(correct, labels, num_classes: int, samples: int = 2000,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Per-class and overall drops with bootstrap 95% intervals.

    ``correct``: (V, N) float, per val image the share of draws classified right under
    variant v (v = 0: clean images; v >= 1: augmented); ``labels``: (N,) int class of each
    image. Returns ``{"clean" (C,), "acc" (C, V), "drop" (C, V-1), "low" (C, V-1),
    "high" (C, V-1), "support" (C,), "overall_clean" (), "overall_drop" (V-1,),
    "overall_low" (V-1,), "overall_high" (V-1,)}``; drops are clean - augmented accuracy
    (positive: the transform costs accuracy), NaN for classes without val images.
    """
    correct = np.asarray(correct, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if correct.ndim != 2 or correct.shape[0] < 2 or correct.shape[1] != len(labels):
        raise AugmineError(f"affinity: need (variants >= 2, {len(labels)} images) scores, got "
                           f"shape {correct.shape}")
    v = correct.shape[0]
    out = {k: np.full((num_classes, v - 1), np.nan) for k in ("drop", "low", "high")}
    out["acc"] = np.full((num_classes, v), np.nan)
    out["support"] = np.bincount(labels, minlength=num_classes)
    for c in range(num_classes):
        mask = labels == c
        if not mask.any():
            continue
        b = mean_intervals(correct[:, mask], reps=samples, seed=seed + c)
        out["acc"][c] = b["mean"]
        out["drop"][c] = -b["diff"][1:]
        out["low"][c], out["high"][c] = -b["diff_high"][1:], -b["diff_low"][1:]
    out["clean"] = out["acc"][:, 0]
    b = mean_intervals(correct, reps=samples, seed=seed)
    out["overall_clean"] = np.float64(b["mean"][0])
    out["overall_drop"] = -b["diff"][1:]
    out["overall_low"], out["overall_high"] = -b["diff_high"][1:], -b["diff_low"][1:]
    return out


def per_image_drops(correct, labels, num_classes: int) -> list[np.ndarray]:
    """``correct`` (V, N) -> per class c an (n_c, V-1) array of per-image drops (clean
    score minus each augmented variant's score), the input of :func:`tailor_overrides`."""
    correct = np.asarray(correct, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    drops = (correct[:1] - correct[1:]).T                      # (N, V-1)
    return [drops[labels == c] for c in range(num_classes)]


def _points(x: float) -> str:
    return f"{int(round(100 * x))}"


def _interval(lo: float, hi: float) -> str:
    return f"[{_points(lo)}, {_points(hi)}]"


def tailor_overrides(drops: Sequence[np.ndarray], class_ids: Sequence[str],
                     columns: Sequence[str], margin: float = DEFAULT_MARGIN,
                     samples: int = 2000, seed: int = 0,
                     strength: float = TAILORED_STRENGTH) -> dict[str, dict]:
    """The per-class overrides the affinity drops call for (the rule in the module docstring).

    ``drops``: per class an (n_c, K) float array of per-image drops (clean minus augmented
    accuracy, averaged over draws), columns ``columns`` (K names: the recipe's top-level
    transforms, the last one :data:`WHOLE`, the recipe as written). Returns ``{class id:
    {"strength": s (whole-recipe rule only), "without": [names] (only when some), "why":
    text}}`` for the classes the rule picks, in class order; ``{}`` when none.
    """
    if len(drops) != len(class_ids):
        raise AugmineError(f"tailor: {len(drops)} drop arrays for {len(class_ids)} classes")
    if not columns or columns[-1] != WHOLE:
        raise AugmineError(f"tailor: the last column must be {WHOLE!r}, got {list(columns)}")
    if margin < 0:
        raise AugmineError(f"--margin {margin}: use 0 or more (accuracy, e.g. 0.10)")
    drops = [np.asarray(d, dtype=np.float64).reshape(-1, len(columns)) for d in drops]
    out: dict[str, dict] = {}
    for c, cid in enumerate(class_ids):
        if len(drops[c]) == 0:
            continue
        others = [d for i, d in enumerate(drops) if i != c and len(d)]
        if not others:
            continue
        pool = np.concatenate(others)                            # (n_others, K)
        other_mean = pool.mean(axis=0)
        excess = mean_intervals((drops[c] - other_mean).T, reps=samples,
                                       seed=seed + c)
        own = mean_intervals(drops[c].T, reps=samples, seed=seed + c)
        rest = mean_intervals(pool.T, reps=samples, seed=seed)
        hit = (excess["low"] > 0) & (excess["mean"] >= margin)
        if not hit.any():
            continue

        def why(k: int, what: str) -> str:
            return (f"{what} costs this class {_points(own['mean'][k])} points "
                    f"{_interval(own['low'][k], own['high'][k])} against "
                    f"{_points(rest['mean'][k])} {_interval(rest['low'][k], rest['high'][k])} "
                    "for the others")

        entry: dict = {}
        reasons = []
        if hit[-1]:
            entry["strength"] = float(strength)
            reasons.append(why(len(columns) - 1, "the whole recipe"))
        off = [k for k in range(len(columns) - 1) if hit[k]]
        names = list(dict.fromkeys(_base_name(columns[k]) for k in off))
        if names:
            entry["without"] = names
            reasons += [why(k, columns[k]) for k in off]
        entry["why"] = "affinity: " + "; ".join(reasons)
        out[str(cid)] = entry
    return out


def _base_name(column: str) -> str:
    """``OneOf#2`` (the second OneOf of a recipe) -> ``OneOf``: the name a recipe uses."""
    return column.split("#", 1)[0]


def column_names(transforms: Sequence[str]) -> list[str]:
    """Unique column names for a recipe's top-level transform names (a repeated name gets
    ``#2``, ``#3``), plus :data:`WHOLE`."""
    seen: dict[str, int] = {}
    out = []
    for name in transforms:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out + [WHOLE]


def most_costly(overall_drop, top: int) -> list[int]:
    """Indices of the ``top`` largest overall drops, largest first (NaN last)."""
    d = np.nan_to_num(np.asarray(overall_drop, dtype=np.float64), nan=-np.inf)
    return [int(i) for i in np.argsort(-d, kind="stable")[:top]]


# =========================================================================== affinity

VERSION = 1


# --------------------------------------------------------------------------- recipes

def recipe_stem(recipe: Recipe | str | os.PathLike) -> str:
    """The folder name of a recipe's results: its file stem (``tiny-imagenet-14``)."""
    if isinstance(recipe, Recipe):
        stem = recipe.path.stem if recipe.path is not None else recipe.name
    else:
        stem = resolve_recipe(recipe).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip(".-") or "recipe"


def transform_alone(recipe: Recipe, i: int) -> Recipe:
    """Recipe entry ``i`` alone, forced to fire (``p: 1``), after a resize to the phase size
    when an earlier entry of ``recipe`` sets the size at p=1 (so it sees what training
    shows it)."""
    entries = recipe.transforms
    entry = dict(entries[i], p=1.0)
    after_crop = any(float(e["p"]) >= 1.0 and sets_size(e["transform"]) for e in entries[:i])
    head = [{"transform": "Resize", "p": 1.0, "area_for_downscale": "image"}] \
        if after_crop and not sets_size(entry["transform"]) else []
    return Recipe(name=f"{recipe.name}: {entry['transform']} alone", description="",
                  path=recipe.path, transforms=head + [entry])


def variants(recipe: Recipe) -> list[tuple[str, Recipe]]:
    """``(column name, recipe)``: clean (no transform), each transform alone, the whole
    recipe."""
    names = column_names([e["transform"] for e in recipe.transforms])
    clean = Recipe(name="clean", description="", path=None, transforms=[])
    return [("clean", clean)] + [(names[i], transform_alone(recipe, i))
                                 for i in range(len(recipe.transforms))] + \
        [(WHOLE, recipe)]


def column_recipe(result: dict, k: int) -> Recipe:
    """The recipe of column ``k`` of a saved affinity ``result`` (transform ``k`` alone, or
    the whole recipe for the last column), rebuilt from its saved entries."""
    recipe = Recipe(name=result["recipe"], description="", path=None,
                    transforms=result["entries"])
    return variants(recipe)[int(k) + 1][1]


def _draw_seed(seed: int, variant: int, draw: int) -> int:
    return int(np.random.SeedSequence([int(seed), variant, draw]).generate_state(1)[0])


def augment_images(images, recipe: Recipe, size: int, seed: int) -> np.ndarray:
    """(N, size, size, 3) uint8: every image of ``images`` (RGB uint8 arrays) through
    ``recipe`` at ``size`` px, one seeded Compose applied in order."""
    compose = build_compose(recipe, size, seed=seed)
    out = np.empty((len(images), size, size, 3), np.uint8)
    for j, img in enumerate(images):
        out[j] = compose(image=img)["image"]
    return out


# --------------------------------------------------------------------------- measuring

def _cache_key(ckpt: Path, size: int, recipe: Recipe, draws: int, seed: int,
               data: str, half: str = "all") -> dict:
    st = ckpt.stat()
    digest = hashlib.sha256(json.dumps(recipe.transforms, sort_keys=True, default=str)
                            .encode()).hexdigest()[:16]
    return {"checkpoint": str(ckpt), "checkpoint_mtime_ns": st.st_mtime_ns,
            "checkpoint_bytes": st.st_size, "size": int(size), "recipe": digest,
            "draws": int(draws), "seed": int(seed), "data": str(data),
            **({"half": half} if half != "all" else {})}      # results saved before halves


def load_affinity(run_dir, recipe) -> dict | None:
    """The saved affinity result of ``recipe`` (Recipe, path or built-in name, or a saved
    recipe stem) on ``run_dir``, or None when it was never measured."""
    run = RunDir.of(run_dir)
    stem = recipe if isinstance(recipe, str) and recipe in run.affinity_recipes() \
        else recipe_stem(recipe)
    return run.read_affinity(stem)


def measure_affinity(run_dir, recipe, draws: int = 2, seed: int = 0, progress: bool = True,
                     force: bool = False, samples: int = 2000, half: str = "all") -> dict:
    """Measure (or reuse) the affinity of ``recipe`` on the run's evaluation checkpoint.

    Returns the saved dict: ``columns`` (K+1: transforms, then the whole recipe),
    ``class_ids``/``class_names`` (C), ``labels``/``val_paths`` (N), ``correct`` (1+K+1, N;
    row 0 clean), ``clean`` (C), ``drop``/``low``/``high`` (C, K+1, accuracy, positive =
    costs accuracy), ``overall`` (``clean``, ``drop``/``low``/``high`` (K+1)), ``entries``
    (the recipe's transforms), ``key`` (what a reuse must match), ``seconds`` and the
    checkpoint, size and data it was measured with. ``force`` measures again. ``half``
    ``"selection"``: only the selection half of val (:func:`augmine.analysis.plans.val_half`
    with the run's config seed, the split mining uses), so that ``recipe compare
    --measure-half`` can score what it tailors on images it never read.
    """
    from augmine.analysis.plans import val_half
    from augmine.core.runtime import progress_bar
    from augmine.data.dataset import load_images
    from augmine.runs.factories import resolve_checkpoint
    from augmine.train.evaluation import load_for_evaluation

    if int(draws) < 1:
        raise AugmineError(f"--draws {draws}: use 1 or more draws per image")
    run = RunDir.of(run_dir).check()
    recipe = as_recipe(recipe)
    stem = recipe_stem(recipe)
    ckpt, _, size = resolve_checkpoint(run.path)
    key = _cache_key(ckpt, size, recipe, draws, seed, run.recorded_data(), half)
    saved = run.read_affinity(stem)
    if saved is not None and not force and saved.get("key") == key and \
            saved.get("version") == VERSION:
        saved["reused"] = True
        return saved
    start = time.perf_counter()
    model, index, info = load_for_evaluation(run.path)
    index = val_half(index, half, run.config.seed)
    val = index.val
    images = load_images(val.paths)
    labels = np.asarray(val.labels, np.int64)
    plan = variants(recipe)
    correct = np.zeros((len(plan), len(labels)))
    jobs = [(v, d) for v in range(len(plan)) for d in range(1 if v == 0 else int(draws))]
    line = (f"affinity: {len(jobs)} passes ({len(plan) - 1} columns x {draws} draws, and "
            f"clean) over {len(labels)} val images at {info['size']} px")
    for v, d in progress_bar(jobs, progress=progress, desc="affinity", unit="pass",
                             line=line, leave=False):
        x = augment_images(images, plan[v][1], info["size"], _draw_seed(seed, v, d))
        probs = model.predict(x, batch_size=info["batch_size"], verbose=0)
        correct[v] += top1_hits(labels, probs) / (1 if v == 0 else int(draws))
    result = affinity_result(correct, index, recipe, info, draws, seed, samples)
    result.update(key=key, run=str(run.path), half=half,
                  seconds=round(time.perf_counter() - start, 1))
    save_affinity(run, result)
    result["reused"] = False
    return result


def affinity_result(correct, index, recipe: Recipe, info: dict, draws: int, seed: int = 0,
                    samples: int = 2000) -> dict:
    """The result dict of :func:`measure_affinity` (less ``key``, ``run`` and ``seconds``)
    from ``correct`` (1+K+1, N; row 0 clean, one row per column of :func:`variants`), the
    val split of ``index``, the recipe and ``info`` (``checkpoint``, ``size``, ``data``)."""
    labels = np.asarray(index.val.labels, np.int64)
    table = affinity_table(correct, labels, index.num_classes, samples=samples, seed=seed)
    return {
        "version": VERSION, "recipe": recipe.name, "recipe_stem": recipe_stem(recipe),
        "recipe_path": str(recipe.path) if recipe.path else None,
        "checkpoint": info["checkpoint"], "size": int(info["size"]), "data": info["data"],
        "draws": int(draws), "seed": int(seed), "entries": recipe.transforms,
        "columns": [name for name, _ in variants(recipe)[1:]],
        "class_ids": list(index.class_ids), "class_names": list(index.class_names),
        "labels": labels.tolist(), "val_paths": [str(p) for p in index.val.paths],
        "correct": np.round(np.asarray(correct, np.float64), 6).tolist(),
        "support": table["support"].tolist(), "clean": _floats(table["clean"]),
        "drop": _floats(table["drop"]), "low": _floats(table["low"]),
        "high": _floats(table["high"]),
        "overall": {"clean": float(table["overall_clean"]),
                    "drop": _floats(table["overall_drop"]),
                    "low": _floats(table["overall_low"]),
                    "high": _floats(table["overall_high"])}}


def save_affinity(run_dir, result: dict) -> Path:
    """Write ``result``'s CSV, JSON (commit point) and heatmap into
    ``RunDir.affinity_dir(result["recipe_stem"])``; returns the folder."""
    run = RunDir.of(run_dir)
    stem = result["recipe_stem"]
    run.write_affinity(stem, {k: v for k, v in result.items() if k != "reused"},
                       affinity_csv(result))
    plot_affinity(result, run.affinity_path(stem, "png"))
    return run.affinity_dir(stem)


def _floats(a) -> list:
    """A float array as nested lists, NaN as None (valid JSON), rounded to 6 digits."""
    a = np.asarray(a, dtype=np.float64)
    return [_floats(x) for x in a] if a.ndim > 1 else \
        [None if not np.isfinite(x) else round(float(x), 6) + 0.0 for x in a]


def as_array(values) -> np.ndarray:
    """A saved list (None for NaN) back to a float array."""
    return np.array([[np.nan if x is None else x for x in row] for row in values]
                    if values and isinstance(values[0], list) else
                    [np.nan if x is None else x for x in values], dtype=np.float64)


# --------------------------------------------------------------------------- output

def affinity_csv(result: dict) -> str:
    """One row per class and column (plus ``all`` rows): class_id, class_name, support,
    clean_acc, transform, drop, low, high (accuracy, positive = costs accuracy)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class_id", "class_name", "support", "clean_acc", "transform", "drop", "low",
                "high"])
    drop, low, high = (as_array(result[k]) for k in ("drop", "low", "high"))
    fmt = lambda x: "" if not np.isfinite(x) else f"{round(x, 4) + 0.0:.4f}"  # noqa: E731
    for c, (cid, name) in enumerate(zip(result["class_ids"], result["class_names"])):
        for k, col in enumerate(result["columns"]):
            w.writerow([cid, name, result["support"][c], fmt(as_array(result["clean"])[c]), col,
                        fmt(drop[c, k]), fmt(low[c, k]), fmt(high[c, k])])
    ov = result["overall"]
    for k, col in enumerate(result["columns"]):
        w.writerow(["all", "all classes", len(result["labels"]), fmt(ov["clean"]), col,
                    *(fmt(as_array(ov[x])[k]) for x in ("drop", "low", "high"))])
    return buf.getvalue()


def plot_affinity(result: dict, path) -> Path:
    """Heatmap PNG: classes (rows) x columns, the drop in points of accuracy, red = costs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drop = 100 * as_array(result["drop"])
    names, cols = result["class_names"], result["columns"]
    lim = max(10.0, float(np.nanmax(np.abs(drop))) if np.isfinite(drop).any() else 10.0)
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(cols) + 3), max(3.5, 0.32 * len(names) + 2)))
    im = ax.imshow(drop, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=50, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    if drop.size <= 600:
        for r in range(drop.shape[0]):
            for c in range(drop.shape[1]):
                if np.isfinite(drop[r, c]):
                    ax.text(c, r, f"{int(round(drop[r, c]))}", ha="center", va="center", fontsize=7,
                            color="white" if abs(drop[r, c]) > 0.6 * lim else "black")
    ax.set_title(f"affinity of {result['recipe']}: accuracy drop (points) against clean "
                 f"({result['size']} px, {result['draws']} draws)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04, label="drop (points)")
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return Path(path)


def _pt(x) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{round(100 * x, 1) + 0.0:+.1f}"


def format_affinity(result: dict, top: int = 5, per_transform: int = 3) -> str:
    """The printed summary: the ``top`` costliest columns overall (the whole recipe first),
    each with the ``per_transform`` classes it hurts most, drops in points [95% interval]."""
    drop, low, high = (as_array(result[k]) for k in ("drop", "low", "high"))
    ov = {k: as_array(result["overall"][k]) for k in ("drop", "low", "high")}
    cols, names = result["columns"], result["class_names"]
    lines = [f"affinity of {result['recipe']} on {result.get('run', 'a run')}",
             f"checkpoint {result['checkpoint']} at {result['size']} px, "
             f"{len(result['labels'])} val images"
             + (f" ({result['half']} half)" if result.get("half", "all") != "all" else "")
             + f", {result['draws']} draw(s) per image"
             + (" (saved result reused; --force measures again)" if result.get("reused")
                else f" ({result.get('seconds', 0):.0f} s)"),
             f"clean top-1 {100 * result['overall']['clean']:.1f}%; drop = clean minus "
             "augmented accuracy, points [95% interval]", ""]
    whole = len(cols) - 1
    order = [whole] + [k for k in most_costly(ov["drop"][:-1], top)]
    for k in order:
        lines.append(f"{cols[k]:<28} {_pt(ov['drop'][k]):>6} "
                     f"[{_pt(ov['low'][k])}, {_pt(ov['high'][k])}]")
        worst = most_costly(drop[:, k], per_transform)
        lines.append("    hurts most: " + "; ".join(
            f"{names[c]} {_pt(drop[c, k])} [{_pt(low[c, k])}, {_pt(high[c, k])}]"
            for c in worst))
    return "\n".join(lines)


# --------------------------------------------------------------------------- tailoring

def tailor_recipe(run_dir, recipe, out, margin: float = DEFAULT_MARGIN, draws: int = 2,
                  seed: int = 0, progress: bool = True, half: str = "all") -> dict:
    """Write ``out``: ``recipe`` plus the ``classes:`` overrides the affinity rule calls for
    (see :mod:`augmine.train.affinity`), from the saved affinity when it matches the run's
    checkpoint, the recipe, ``draws``, ``seed`` and ``half`` (see :func:`measure_affinity`),
    else measured first.

    Returns ``{"path", "classes" (the overrides), "affinity" (the result used)}``.
    """
    import yaml

    recipe = as_recipe(recipe)
    result = measure_affinity(run_dir, recipe, draws=draws, seed=seed, progress=progress,
                              half=half)
    drops = per_image_drops(result["correct"], result["labels"], len(result["class_ids"]))
    overrides = tailor_overrides(drops, result["class_ids"], result["columns"],
                                       margin=margin, seed=seed)
    run = RunDir.of(run_dir)
    description = (f"{recipe.description.rstrip('. ')}. " if recipe.description else "") + (
        f"Tailored by `augmine recipe tailor` from the affinity of run {run.path} "
        f"({Path(result['checkpoint']).name}, {result['size']} px, {result['draws']} draws, "
        f"margin {margin:g}"
        + (f", {half} half of val, split seed {run.config.seed}" if half != "all" else "")
        + f"): {len(overrides)} class(es) with overrides.")
    text = dump_recipe({"name": f"{recipe.name}-tailored", "description": description,
                        "transforms": recipe.transforms})
    text += yaml.safe_dump({"classes": overrides}, sort_keys=False, allow_unicode=True,
                           width=100)
    path = atomic.write_text(Path(out), text)
    return {"path": path, "classes": overrides, "affinity": result}


# =========================================================================== as the app shows it
# A saved affinity result as the Affinity page shows it: the command that measures one and
# one cell (class, transform) with the images it hurts most.

def affinity_command(run_dir) -> str:
    """The command that measures affinity on ``run_dir``, naming the recipe of the run's
    last phase when its config can be read (else ``RECIPE``)."""
    run = RunDir.of(run_dir)
    recipe = "RECIPE"
    try:
        last = run.config.phases[-1].recipe
        recipe = Path(last).stem if last else recipe
    except (AugmineError, AttributeError, IndexError):
        pass
    return f"augmine recipe affinity {recipe} --run {run.path}"


def affinity_cell(result: dict, c: int, k: int) -> dict:
    """Cell (class ``c``, column ``k``) of a saved affinity result: ``drop``, ``low``,
    ``high``, ``clean`` (class accuracy on clean images), ``support`` and ``order``: the
    class's val image indices (into ``result["val_paths"]``), the ones the column hurts
    most first (per-image clean minus augmented score, averaged over draws)."""

    labels = np.asarray(result["labels"])
    correct = np.asarray(result["correct"], dtype=np.float64)
    idx = np.flatnonzero(labels == c)
    hurt = correct[0, idx] - correct[k + 1, idx]
    order = idx[np.argsort(-hurt, kind="stable")]
    cell = {key: float(as_array(result[key])[c, k]) for key in ("drop", "low", "high")}
    return {**cell, "clean": float(as_array(result["clean"])[c]), "support": int(len(idx)),
            "order": order}
