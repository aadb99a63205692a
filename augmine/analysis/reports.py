"""Stage reports in a run folder: ``RUN/reports/<stage>/`` after every phase and mining round.

:func:`write_stage_report` turns validation predictions into

- ``report.json``   everything below, for machines (written last: its presence marks a
  complete report);
- ``per_class.csv`` precision, recall, F1, support per class;
- ``confusion.npy`` (C, C) int64 confusion matrix (row = true class);
- ``predictions.npz`` ``y_true (N,)``, ``probs (N, C) float32``, ``val_paths (N,)`` str;
- ``report.md``     for people: accuracy, weakest/strongest classes, confused pairs, the plan,
  before/after for rounds;
- ``f1.png``        per-class F1, sorted; ``confusion.png`` heatmap of the weakest classes.

Every file is written atomically (:mod:`augmine.core.atomic`). No TensorFlow here.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.analysis.mining import (OversamplingPlan, confused_pairs, confusion_matrix, describe_pair,
                     describe_symmetric, jsonable, per_class_report, symmetric_pairs)
from augmine.runs.rundir import RunDir

REPORT_FILES = ("report.json", "per_class.csv", "confusion.npy", "report.md", "f1.png",
                "confusion.png", "predictions.npz")
_STAGE_RE = re.compile(r"^(phase|epoch|round)-(\d+)$")
_STAGE_ORDER = {"phase": 0, "epoch": 1, "round": 2}


def stage_sort_key(stage: str) -> tuple:
    """Order stages as produced: phase-1, phase-2, ..., epoch-1, epoch-2, ... (reports of a
    user's own fit, :mod:`augmine.train.callbacks`), round-1, round-2, ..., then others."""
    m = _STAGE_RE.match(stage)
    if m:
        return (_STAGE_ORDER[m.group(1)], int(m.group(2)), stage)
    return (3, 0, stage)


def stage_dir(run_dir, stage: str) -> Path:
    """The folder of ``stage``'s report in the run folder (see :class:`RunDir`)."""
    return RunDir.of(run_dir).report_dir(stage)


def report_done(run_dir, stage: str) -> bool:
    """Whether ``stage`` has a complete report (its ``report.json``, written last)."""
    return (stage_dir(run_dir, stage) / "report.json").is_file()


def _summary(report: dict, names: Sequence[str]) -> dict:
    f1 = {c["name"]: c["f1"] for c in report["per_class"]}
    return {"stage": report.get("stage"), "accuracy": report.get("accuracy"),
            "macro_f1": report.get("macro_f1"), "f1": {n: f1.get(n) for n in names}}


def write_stage_report(run_dir, stage: str, y_true, probs, class_ids: Sequence[str],
                       class_names: Sequence[str], *, meta: dict | None = None,
                       plan: OversamplingPlan | dict | None = None,
                       before: dict | None = None, val_paths=None, plots: bool = True,
                       effect: dict | None = None) -> dict:
    """Write every file of ``RUN/reports/<stage>/`` and return the report dict.

    ``y_true`` (N,) int val labels, ``probs`` (N, C) class probabilities; ``meta`` e.g.
    ``{"kind": "phase"|"round", "size": 32, "epochs_done": 10}`` (kept under ``meta``,
    with ``kind``/``size`` also at top level). ``plan``: the OversamplingPlan a round
    used. ``before``: the report (or ``{accuracy, macro_f1, f1: {name: value}}``) of the
    stage the round started from; the F1 of the plan's chosen classes is compared.
    ``val_paths`` (N,): the val images' paths (kept in ``predictions.npz`` for the app);
    empty strings when not given. ``run_dir``: a path or :class:`RunDir`. ``effect``: a
    round's measurement (:func:`augmine.rounds.measure.measure_round`: before/after/control on the
    measurement images, with intervals); when given, ``before``/``after``/``changes`` come
    from it (measurement images only) and ``report.md`` shows it.
    """
    y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float32)
    num = len(class_ids)
    if probs.ndim != 2 or probs.shape != (len(y_true), num):
        raise AugmineError(f"{stage} report: probs has shape {probs.shape}; expected "
                           f"({len(y_true)}, {num}) for {len(y_true)} labels and {num} classes")
    meta = dict(meta or {})
    if isinstance(plan, dict):
        plan = OversamplingPlan.from_dict(plan)
    y_pred = probs.argmax(axis=1)
    rep = per_class_report(y_true, y_pred, list(class_names), probs=probs,
                           class_ids=list(class_ids))
    cm = confusion_matrix(y_true, y_pred, num)
    m = _STAGE_RE.match(stage)
    kind = meta.get("kind") or (m.group(1) if m else "other")
    order = sorted(range(num), key=lambda i: (rep["per_class"][i]["f1"], i))
    n_ext = min(5, num)
    report = {
        "stage": stage, "kind": kind, "size": meta.get("size"),
        "epochs_done": meta.get("epochs_done"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "num_samples": rep["num_samples"], "num_classes": num,
        "accuracy": rep["accuracy"], "top5_accuracy": rep["top5_accuracy"],
        "macro_f1": rep["macro_f1"], "weighted_f1": rep["weighted"]["f1"],
        "macro": rep["macro"], "weighted": rep["weighted"],
        "per_class": rep["per_class"],
        "confused_pairs": confused_pairs(cm, list(class_names), top=10),
        "symmetric_pairs": symmetric_pairs(cm, list(class_names), top=10),
        "weakest": [class_names[i] for i in order[:n_ext]],
        "strongest": [class_names[i] for i in order[::-1][:n_ext]],
        "plan": plan.to_dict() if plan is not None else None,
        "before": None, "after": None, "changes": None,
        "meta": jsonable(meta),
        "files": list(REPORT_FILES),
    }
    if before is not None:
        chosen = plan.weak_names if plan is not None else report["weakest"]
        b = _summary(before, chosen) if "per_class" in before else {
            "stage": before.get("stage"), "accuracy": before.get("accuracy"),
            "macro_f1": before.get("macro_f1"),
            "f1": {n: (before.get("f1") or {}).get(n) for n in chosen}}
        a = _summary(report, chosen)
        report["before"], report["after"] = b, a
        report["changes"] = [
            {"name": n, "before": b["f1"][n], "after": a["f1"][n],
             "delta": None if b["f1"][n] is None else a["f1"][n] - b["f1"][n]} for n in chosen]
    if effect is not None:
        report.update(_from_effect(effect, before))
    report = jsonable(report)

    out = stage_dir(run_dir, stage)
    out.mkdir(parents=True, exist_ok=True)
    if val_paths is None:
        val_paths = [""] * len(y_true)
    if len(val_paths) != len(y_true):
        raise AugmineError(f"{stage} report: {len(val_paths)} val paths for {len(y_true)} "
                           "labels; pass the paths of the evaluated split")
    val_paths = np.asarray([str(p) for p in val_paths], dtype=str)
    with atomic.atomic_path(out / "predictions.npz") as tmp:
        np.savez_compressed(tmp, y_true=y_true, probs=probs, val_paths=val_paths)
    with atomic.atomic_path(out / "confusion.npy") as tmp:
        np.save(tmp, cm)
    atomic.write_text(out / "per_class.csv", _per_class_csv(report))
    if plots:
        plot_f1(report, out / "f1.png")
        plot_confusion(cm, list(class_names), order, out / "confusion.png")
    atomic.write_text(out / "report.md", render_markdown(report))
    atomic.write_json(out / "report.json", report)   # last: marks the report complete
    return report


def _from_effect(effect: dict, before: dict | None) -> dict:
    """``effect``, ``before``, ``after`` and ``changes`` of a round report from its
    measurement (the chosen classes' F1 with their support, on the measurement images)."""
    table = effect["table"]
    by_name = {c["name"]: c for c in effect["per_class"]}
    chosen = effect["chosen"]

    def side(key, stage):
        return {"stage": stage, "accuracy": table["top-1"][key]["value"],
                "macro_f1": table["macro F1"][key]["value"],
                "f1": {n: by_name[n][key] for n in chosen}, "measured_on": effect["measurement"],
                "images": effect["measurement_images"]}

    return {"effect": effect, "before": side("before", (before or {}).get("stage")),
            "after": side("after", None),
            "changes": [{"name": n, "support": by_name[n]["support"],
                         "before": by_name[n]["before"], "after": by_name[n]["after"],
                         "delta": by_name[n]["change"], "control": by_name[n]["control"],
                         "effect": by_name[n]["effect"]} for n in chosen]}


def _per_class_csv(report: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "class_id", "name", "precision", "recall", "f1", "support"])
    for c in report["per_class"]:
        w.writerow([c["index"], c["class_id"], c["name"], f"{c['precision']:.4f}",
                    f"{c['recall']:.4f}", f"{c['f1']:.4f}", c["support"]])
    return buf.getvalue()


# --------------------------------------------------------------------------- markdown

def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:.1%}" if pct else f"{v:.3f}"


def render_markdown(report: dict) -> str:
    """The human-readable ``report.md`` of a report dict."""
    by_name = {c["name"]: c for c in report["per_class"]}
    lines = [f"# Report {report['stage']}", ""]
    size = f", {report['size']} px" if report.get("size") else ""
    lines += [f"- kind: {report['kind']}{size}; {report['num_samples']} validation images, "
              f"{report['num_classes']} classes",
              f"- accuracy: {_fmt(report['accuracy'], True)}; top-5: "
              f"{_fmt(report['top5_accuracy'], True)}; macro F1: {_fmt(report['macro_f1'])}", ""]
    if report.get("effect"):
        lines += _effect_markdown(report["effect"], (report.get("before") or {}).get("stage"))
    elif report.get("changes"):
        b, a = report["before"], report["after"]
        lines += [f"## Before ({b.get('stage') or 'previous'}) and after", "",
                  "| | before | after | change |", "|---|---|---|---|",
                  f"| accuracy | {_fmt(b['accuracy'], True)} | {_fmt(a['accuracy'], True)} | "
                  f"{_delta(b['accuracy'], a['accuracy'], True)} |",
                  f"| macro F1 | {_fmt(b['macro_f1'])} | {_fmt(a['macro_f1'])} | "
                  f"{_delta(b['macro_f1'], a['macro_f1'])} |"]
        for ch in report["changes"]:
            lines.append(f"| F1 {ch['name']} | {_fmt(ch['before'])} | {_fmt(ch['after'])} | "
                         f"{_delta(ch['before'], ch['after'])} |")
        lines.append("")
    for title, names in (("Weakest classes", report["weakest"]),
                         ("Strongest classes", report["strongest"])):
        lines += [f"## {title}", "", "| class | precision | recall | F1 | support |",
                  "|---|---|---|---|---|"]
        for n in names:
            c = by_name[n]
            lines.append(f"| {n} | {_fmt(c['precision'])} | {_fmt(c['recall'])} | "
                         f"{_fmt(c['f1'])} | {c['support']} |")
        lines.append("")
    lines += ["## Most confused pairs", ""]
    lines += [f"- {describe_pair(p)}" for p in report["confused_pairs"]] or ["- none"]
    lines += ["", "## Most confused pairs, both directions", ""]
    lines += [f"- {describe_symmetric(p)}" for p in report["symmetric_pairs"]] or ["- none"]
    lines.append("")
    plan = report.get("plan")
    lines += ["## Plan", ""]
    if plan:
        pol = plan.get("policy") or {}
        lines.append(f"- policy: {pol.get('policy', '?')}, scheme {pol.get('scheme', '?')}, "
                     f"factor {pol.get('factor', '?')}, cap {pol.get('cap')}; "
                     f"recipe for weak classes: {plan.get('recipe') or 'the phase recipe'}")
        mode = (report.get("meta") or {}).get("mode")
        if mode:
            lines.append(f"- mode: {mode}")
        for i in plan["weak"]:
            lines.append(f"- {plan['class_names'][i]}: x{plan['factors'][i]:.2f}")
    else:
        lines.append("- none (a training phase)")
    lines += ["", "![per-class F1](f1.png)", "", "![confusions of the weakest classes](confusion.png)", ""]
    return "\n".join(lines)


def _cell(c, pct: bool = False, sign: bool = False) -> str:
    if c is None:
        return "-"
    k, d = (100, 1) if pct else (1, 3)
    f = (lambda v: f"{v * k:+.{d}f}") if sign else (lambda v: f"{v * k:.{d}f}")  # noqa: E731
    return f"{f(c['value'])} [{f(c['lo'])}, {f(c['hi'])}]" + (" pt" if pct and sign else
                                                              "%" if pct else "")


def _effect_markdown(effect: dict, start: str | None) -> list[str]:
    lines = [f"## Round effect (from {start or 'the previous stage'})", "",
             f"- weak classes chosen on: {effect['selection']}; measured on: "
             f"{effect['measurement']} ({effect['measurement_images']} images)",
             "- control: " + ("plain sampling from the same start, same steps, learning rate "
                              "and seeds" if effect["control"] else
                              "none (--no-control): the effect net of control is unmeasured; "
                              "after - before mixes the round with more training"),
             f"- intervals: 95% bootstrap over the measurement images ({effect['reps']} "
             "paired resamples)", ""]
    if effect.get("warning"):
        lines += [f"**{effect['warning']}**", ""]
    if effect.get("note"):
        lines += [effect["note"], ""]
    lines += ["| | before | after | control | after - before | net of control |",
              "|---|---|---|---|---|---|"]
    for m, row in effect["table"].items():
        pct = m == "top-1"
        lines.append(f"| {m} | {_cell(row['before'], pct)} | {_cell(row['after'], pct)} | "
                     f"{_cell(row['control'], pct)} | {_cell(row['change'], pct, True)} | "
                     f"{_cell(row['effect'], pct, True)} |")
    by_name = {c["name"]: c for c in effect["per_class"]}
    lines += ["", "| chosen class | support | F1 before | after | control | net of control |",
              "|---|---|---|---|---|---|"]
    partners = effect.get("partners") or []
    for n in list(effect["chosen"]) + list(partners):
        c = by_name[n]
        tag = " (confusion partner)" if n in partners else ""
        lines.append(f"| {n}{tag} | {c['support']} | {_fmt(c['before'])} | {_fmt(c['after'])} | "
                     f"{_fmt(c['control'])} | {_delta(c['control'], c['after'])} |")
    ref = "control" if effect["control"] else "start"
    lines += ["", f"### F1 fell most (against the {ref})", ""]
    lines += [f"- {c['name']} [{c['support']}]: {c['ref']:.3f} -> {c['after']:.3f} "
              f"({c['delta']:+.3f})" for c in effect["losers"]] or ["- none fell"]
    lines.append("")
    return lines


def _delta(b, a, pct: bool = False) -> str:
    if a is None or b is None:
        return "-"
    d = a - b
    return f"{d * 100:+.1f} pt" if pct else f"{d:+.3f}"


# --------------------------------------------------------------------------- plots

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


# --------------------------------------------------------------------------- reading

def list_stage_reports(run_dir) -> list[dict]:
    """Complete reports of ``run_dir`` (those with a ``report.json``), phases then rounds."""
    stages = [s for s in RunDir.of(run_dir).stages() if report_done(run_dir, s)]
    return [load_stage_report(run_dir, s) for s in sorted(stages, key=stage_sort_key)]


def load_stage_report(run_dir, stage: str) -> dict:
    """The ``report.json`` of one stage; a one-line error naming the known stages if absent."""
    path = stage_dir(run_dir, stage) / "report.json"
    if not path.is_file():
        known = [s for s in RunDir.of(run_dir).stages() if report_done(run_dir, s)]
        hint = f"known stages: {', '.join(sorted(known, key=stage_sort_key))}" if known else \
            "this run has no reports yet; train it first (`augmine train`)"
        raise AugmineError(f"{path} is missing; {hint}")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AugmineError(f"{path}: unreadable report ({exc}); rerun the stage to rewrite it")


def load_predictions(run_dir, stage: str) -> dict:
    """``{"y_true" (N,), "probs" (N, C), "val_paths" (N,)}`` of one stage."""
    path = stage_dir(run_dir, stage) / "predictions.npz"
    if not path.is_file():
        raise AugmineError(f"{path} is missing; rerun the stage to rewrite its report")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_confusion(run_dir, stage: str) -> np.ndarray | None:
    """The (C, C) confusion matrix of one stage, or None when its report has none."""
    path = stage_dir(run_dir, stage) / "confusion.npy"
    return np.load(path) if path.is_file() else None


def report_files_stamp(run_dir) -> tuple:
    """``(stage, file, mtime_ns)`` of every stage's ``report.json`` and ``suspects.csv``:
    changes whenever a report is added or rewritten (a cache key for the app)."""
    run = RunDir.of(run_dir)
    files = [f for s in run.stages()
             for f in (stage_dir(run, s) / "report.json", run.suspects_path(s))]
    return tuple(sorted((p.parent.name, p.name, p.stat().st_mtime_ns)
                        for p in files if p.is_file()))


def latest_report(run_dir) -> dict:
    """The most recent complete report (last round, else last phase); error when none."""
    reports = list_stage_reports(run_dir)
    if not reports:
        raise AugmineError(f"{RunDir.of(run_dir).reports_dir} holds no stage report; "
                           "train the run first (`augmine train`) or check the RUN folder")
    return reports[-1]


def history(run_dir, classes: Sequence[str] | None = None) -> dict:
    """F1 of chosen classes and overall numbers across phases and rounds.

    ``classes``: class names (or ids) to follow; default the classes chosen by the
    rounds' plans, else the five weakest of the latest report. Returns
    ``{"classes": [names], "rows": [{stage, kind, size, accuracy, top5_accuracy,
    macro_f1, f1: {name: value}}]}``.
    """
    reports = list_stage_reports(run_dir)
    if not reports:
        raise AugmineError(f"{RunDir.of(run_dir).reports_dir} holds no stage report; "
                           "train the run first (`augmine train`) or check the RUN folder")
    last = reports[-1]
    by_key = {}
    for c in last["per_class"]:
        by_key[c["name"].lower()] = c["name"]
        by_key[str(c["class_id"]).lower()] = c["name"]
    if classes:
        names = []
        for k in classes:
            if str(k).lower() not in by_key:
                from difflib import get_close_matches

                close = get_close_matches(str(k), [c["name"] for c in last["per_class"]], n=3)
                hint = f"did you mean {', '.join(map(repr, close))}?" if close else \
                    f"known classes: {', '.join(c['name'] for c in last['per_class'][:8])}"
                raise AugmineError(f"no class {k!r} in {run_dir}; {hint}")
            names.append(by_key[str(k).lower()])
    else:
        names = []
        for r in reports:
            for n in (r.get("plan") or {}).get("weak_names") or []:
                if n not in names:
                    names.append(n)
        names = names or list(last["weakest"])
    rows = []
    for r in reports:
        f1 = {c["name"]: c["f1"] for c in r["per_class"]}
        rows.append({"stage": r["stage"], "kind": r["kind"], "size": r.get("size"),
                     "accuracy": r["accuracy"], "top5_accuracy": r.get("top5_accuracy"),
                     "macro_f1": r["macro_f1"], "f1": {n: f1.get(n) for n in names}})
    return {"classes": names, "rows": rows}
