"""Stage reports in a run folder: ``RUN/reports/<stage>/`` after every phase and mining round,
``report.md`` (the report for people) included.

:func:`write_stage_report` turns validation predictions into

- ``report.json``   everything below, for machines (written last: its presence marks a
  complete report);
- ``per_class.csv`` precision, recall, F1, support per class;
- ``confusion.npy`` (C, C) int64 confusion matrix (row = true class);
- ``predictions.npz`` ``y_true (N,)``, ``probs (N, C) float32``, ``val_paths (N,)`` str;
- ``report.md``     for people: accuracy, weakest/strongest classes, confused pairs, the plan,
  before/after for rounds.

Training does not draw plots (matplotlib costs a second or more a report, paid by every arm
and test that never looks): :func:`draw_report_plots` draws ``f1.png`` (per-class F1,
sorted) and ``confusion.png`` (the weakest classes' confusions) from ``report.json`` and
``confusion.npy`` when asked for (``augmine mine analyze``), and links them in
``report.md``, which until then names the command that draws them.

File names come from :data:`augmine.runs.rundir.REPORT_FILES` and ``REPORT_PLOTS``;
``report.md`` is rendered by :func:`render_markdown`, the plots by
:mod:`augmine.analysis.report_plots`. Every file is written atomically
(:mod:`augmine.core.atomic`). No TensorFlow here.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from typing import Any, Sequence

import numpy as np

from augmine.analysis.metrics import (confused_pairs, confusion_matrix, describe_pair,
                                      describe_symmetric, per_class_report, symmetric_pairs)
from augmine.analysis.plans import OversamplingPlan
from augmine.analysis.report_plots import plot_confusion, plot_f1
from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.core.naming import did_you_mean
from augmine.core.runtime import command_line
from augmine.runs.rundir import REPORT_FILES, REPORT_PLOTS, RunDir


# =========================================================================== report_markdown
# ``report.md``: a stage report dict as Markdown for people (accuracy, the round's effect or
# before/after, weakest and strongest classes, confused pairs, the plan, the plots or how to
# draw them).

def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:.1%}" if pct else f"{v:.3f}"


def render_markdown(report: dict, plots_hint: str | None) -> str:
    """The human-readable ``report.md`` of a report dict. ``plots_hint``: None when
    ``f1.png`` and ``confusion.png`` are beside it (they are shown), else the line that says
    how to draw them (a report never links a plot that is not there)."""
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
    lines += ["", plots_hint, ""] if plots_hint else [
        "", "![per-class F1](f1.png)", "", "![confusions of the weakest classes](confusion.png)",
        ""]
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
    lines += [f"- {c['name']} [{c['support']}]: {ref} {c['ref']:.3f}, round {c['after']:.3f} "
              f"({c['delta']:+.3f})" for c in effect["losers"]] or ["- none fell"]
    lines.append("")
    return lines


def _delta(b, a, pct: bool = False) -> str:
    if a is None or b is None:
        return "-"
    d = a - b
    return f"{d * 100:+.1f} pt" if pct else f"{d:+.3f}"


# =========================================================================== reports

_STAGE_RE = re.compile(r"^(phase|epoch|round)-(\d+)$")
_STAGE_ORDER = {"phase": 0, "epoch": 1, "round": 2}


def stage_sort_key(stage: str) -> tuple:
    """Order stages as produced: phase-1, phase-2, ..., epoch-1, epoch-2, ... (reports of a
    user's own fit, :mod:`augmine.train.callbacks`), round-1, round-2, ..., then others."""
    m = _STAGE_RE.match(stage)
    if m:
        return (_STAGE_ORDER[m.group(1)], int(m.group(2)), stage)
    return (3, 0, stage)


def report_done(run_dir, stage: str) -> bool:
    """Whether ``stage`` has a complete report (its ``report.json``, written last)."""
    return RunDir.of(run_dir).report_file(stage, "report.json").is_file()


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays (and plans) turned into plain Python (for JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, OversamplingPlan):
        return obj.to_dict()
    return obj


def _summary(report: dict, names: Sequence[str]) -> dict:
    f1 = {c["name"]: c["f1"] for c in report["per_class"]}
    return {"stage": report.get("stage"), "accuracy": report.get("accuracy"),
            "macro_f1": report.get("macro_f1"), "f1": {n: f1.get(n) for n in names}}


def write_stage_report(run_dir, stage: str, y_true, probs, class_ids: Sequence[str],
                       class_names: Sequence[str], *, meta: dict | None = None,
                       plan: OversamplingPlan | dict | None = None,
                       before: dict | None = None, val_paths=None,
                       effect: dict | None = None) -> dict:
    """Write every file of ``RUN/reports/<stage>/`` and return the report dict.

    ``y_true`` (N,) int val labels, ``probs`` (N, C) class probabilities; ``meta`` e.g.
    ``{"kind": "phase"|"round", "size": 32, "epochs_done": 10}`` (kept under ``meta``,
    with ``kind``/``size`` also at top level). ``plan``: the OversamplingPlan a round
    used (``report.json`` refers to the round's plan file when that holds it, see
    :func:`load_stage_report`). ``before``: the report (or ``{accuracy, macro_f1, f1:
    {name: value}}``) of the stage the round started from; the F1 of the plan's chosen
    classes is compared.
    ``val_paths`` (N,): the val images' paths (kept in ``predictions.npz`` for the app);
    empty strings when not given. ``run_dir``: a path or :class:`RunDir`. ``effect``: a
    round's measurement (:func:`augmine.rounds.runner.measure_round`: before/after/control on the
    measurement images, with intervals); when given, ``before``/``after``/``changes`` come
    from it (measurement images only) and ``report.md`` shows it. No plots: see
    :func:`draw_report_plots`.
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
    order = _weakest_first(rep["per_class"])
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

    run = RunDir.of(run_dir)
    stored = {**report, "plan": _plan_ref(run, stage, report["plan"])}
    path = lambda name: run.report_file(stage, name)  # noqa: E731
    path("report.json").parent.mkdir(parents=True, exist_ok=True)
    if val_paths is None:
        val_paths = [""] * len(y_true)
    if len(val_paths) != len(y_true):
        raise AugmineError(f"{stage} report: {len(val_paths)} val paths for {len(y_true)} "
                           "labels; pass the paths of the evaluated split")
    val_paths = np.asarray([str(p) for p in val_paths], dtype=str)
    # not flushed one by one: the state.json written after a report is the commit point
    with atomic.atomic_path(path("predictions.npz"), sync=False) as tmp:
        np.savez_compressed(tmp, y_true=y_true, probs=probs, val_paths=val_paths)
    with atomic.atomic_path(path("confusion.npy"), sync=False) as tmp:
        np.save(tmp, cm)
    atomic.write_text(path("per_class.csv"), _per_class_csv(report), sync=False)
    atomic.write_text(path("report.md"), render_markdown(report, _plots_hint(run, stage)),
                      sync=False)
    atomic.write_json(path("report.json"), stored, sync=False)   # last: marks it complete
    return report


def _weakest_first(per_class: list[dict]) -> list[int]:
    """Class indices by F1, lowest first (ties by index)."""
    return [c["index"] for c in sorted(per_class, key=lambda c: (c["f1"], c["index"]))]


def _plots_hint(run: RunDir, stage: str) -> str:
    return (f"Plots (per-class F1, the weakest classes' confusions): "
            f"`{command_line('mine', 'analyze', run.path, '--stage', stage)}` draws them here.")


def draw_report_plots(run_dir, stage: str) -> list:
    """``f1.png`` and ``confusion.png`` of a stage report, drawn from its ``report.json`` and
    ``confusion.npy`` where missing or older than the report, and ``report.md`` rewritten to
    show them. Returns their paths. ``run_dir``: a path or :class:`RunDir`; an
    :class:`OSError` names the file a refused write (read-only folder) was for."""
    run = RunDir.of(run_dir)
    report = load_stage_report(run, stage)
    paths = [run.report_file(stage, name) for name in REPORT_PLOTS]
    made = run.report_file(stage, "report.json").stat().st_mtime_ns
    if all(p.is_file() and p.stat().st_mtime_ns >= made for p in paths):
        return paths
    cm = load_confusion(run, stage)
    if cm is None:
        raise AugmineError(f"{run.report_file(stage, 'confusion.npy')} is missing; rerun the "
                           "stage to rewrite its report")
    names = [c["name"] for c in sorted(report["per_class"], key=lambda c: c["index"])]
    plot_f1(report, paths[0])
    plot_confusion(cm, names, _weakest_first(report["per_class"]), paths[1])
    atomic.write_text(run.report_file(stage, "report.md"), render_markdown(report, None))
    return paths


def _plan_ref(run: RunDir, stage: str, plan: dict | None):
    """What ``report.json`` stores for a round's ``plan``: the reference to the round's plan
    file (``plans/round-N.json``) when that file holds this plan, else the plan itself."""
    m = _STAGE_RE.match(stage)
    if plan is None or not m or m.group(1) != "round":
        return plan
    stored = run.stored_plan(int(m.group(2)))
    return run.plan_ref(int(m.group(2))) if stored is not None and jsonable(stored) == plan \
        else plan


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


# --------------------------------------------------------------------------- reading

def list_stage_reports(run_dir) -> list[dict]:
    """Complete reports of ``run_dir`` (those with a ``report.json``), phases then rounds."""
    stages = [s for s in RunDir.of(run_dir).stages() if report_done(run_dir, s)]
    return [load_stage_report(run_dir, s) for s in sorted(stages, key=stage_sort_key)]


def load_stage_report(run_dir, stage: str) -> dict:
    """The ``report.json`` of one stage (a round's ``plan`` read from the plan file it refers
    to; older reports hold it); a one-line error naming the known stages if absent."""
    path = RunDir.of(run_dir).report_file(stage, "report.json")
    if not path.is_file():
        known = [s for s in RunDir.of(run_dir).stages() if report_done(run_dir, s)]
        hint = f"known stages: {', '.join(sorted(known, key=stage_sort_key))}" if known else \
            "this run has no reports yet; train it first (`augmine train`)"
        raise AugmineError(f"{path} is missing; {hint}")
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AugmineError(f"{path}: unreadable report ({exc}); rerun the stage to rewrite it")
    if isinstance(report.get("plan"), str):       # a round's plan, stored once in plans/
        report["plan"] = RunDir.of(run_dir).referred_plan(report["plan"], path)
    return report


def load_predictions(run_dir, stage: str) -> dict:
    """``{"y_true" (N,), "probs" (N, C), "val_paths" (N,)}`` of one stage."""
    path = RunDir.of(run_dir).report_file(stage, "predictions.npz")
    if not path.is_file():
        raise AugmineError(f"{path} is missing; rerun the stage to rewrite its report")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_confusion(run_dir, stage: str) -> np.ndarray | None:
    """The (C, C) confusion matrix of one stage, or None when its report has none."""
    path = RunDir.of(run_dir).report_file(stage, "confusion.npy")
    return np.load(path) if path.is_file() else None


def report_files_stamp(run_dir) -> tuple:
    """``(stage, file, mtime_ns)`` of every stage's ``report.json`` and ``suspects.csv``:
    changes whenever a report is added or rewritten (a cache key for the app)."""
    run = RunDir.of(run_dir)
    files = [f for s in run.stages()
             for f in (run.report_file(s, "report.json"), run.suspects_path(s))]
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
                hint = did_you_mean(k, [c["name"] for c in last["per_class"]], n=3) or \
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
