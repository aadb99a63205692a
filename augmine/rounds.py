"""Mining rounds on a run folder: plan -> extra epochs on the weak classes -> report.

A round N uses the run's saved plan of round N (written by :func:`write_plan`, or made
from the latest report and the config's ``mining:`` defaults when absent), trains extra
epochs from the run's last checkpoint through the trainer
(:func:`augmine.train.train_extra_epochs`), re-evaluates and writes the ``round-N``
report with the per-class F1 before and after. The files live where
:class:`~augmine.rundir.RunDir` puts them.

Safe to repeat (how a round stays consistent when interrupted):

- when round N first starts, the last and best checkpoints and the state are copied
  (atomically) to the round's start snapshot (:meth:`RunDir.snapshot`); its metadata,
  written last, records the plan and mode and marks the round as started;
- the trainer commits every epoch (checkpoint, history row, then state), so running an
  interrupted round again resumes it from its last committed epoch (same plan and mode
  required; a different one asks for ``redo``);
- the round's report is written last; its completion is what makes the round done.
  Running a done round again is a one-line error unless ``redo=True``, which puts the
  start snapshot back (the trainer then drops the later history rows), deletes the
  round's report and trains it again (latest round only).

Keras is imported only by :func:`run_round` and :func:`find_suspects` (through the trainer).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import atomic
from .errors import AugmineError
from .evaluation import evaluate_model, evaluation_settings
from .mining import OversamplingPlan, f1_vector, make_plan
from .reports import (latest_report, list_stage_reports, report_done, stage_sort_key,
                      write_stage_report)
from .rundir import RunDir
from .train import checked_run_index, train_extra_epochs
from .training import load_checkpoint

log = logging.getLogger("augmine")

MODES = ("oversample", "class-weight")
_ROUND_RE = re.compile(r"^round-(\d+)$")
# mining defaults when the run's config has no ``mining:`` section
MINING_DEFAULTS = {"policy": "bottom-k", "k": 20, "threshold": None, "z": None, "factor": 3.0,
                   "cap": None, "epochs": 5, "recipe": None}


# --------------------------------------------------------------------------- run folder

def check_run_dir(run_dir) -> RunDir:
    """``run_dir`` as a checked :class:`RunDir`; one-line error when it is not a run folder."""
    return RunDir.of(run_dir).check()


def mining_settings(run_dir, **overrides) -> dict:
    """Mining settings: defaults < the config's ``mining:`` section < ``overrides`` (not None)."""
    run = RunDir.of(run_dir)
    settings = dict(MINING_DEFAULTS)
    if run.config_path.is_file():
        settings.update(run.config.mining.options())
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return settings


def load_run_index(run_dir):
    """The run's dataset (``data:`` in its config) as a DatasetIndex."""
    from .dataset import load_index

    run = RunDir.of(run_dir)
    data = run.config.data
    if not data:
        raise AugmineError(f"{run.config_path} records no `data:` folder; the trainer writes "
                           "it there")
    return load_index(data)


def done_rounds(run_dir) -> list[int]:
    """Numbers of the rounds with a complete report, ascending."""
    nums = []
    for rep in list_stage_reports(run_dir):
        m = _ROUND_RE.match(rep["stage"])
        if m:
            nums.append(int(m.group(1)))
    return sorted(nums)


def next_round(run_dir) -> int:
    """The number of the next round to run: one after the last complete round."""
    done = done_rounds(run_dir)
    return (done[-1] + 1) if done else 1


def read_plan(run_dir, round_no: int, index=None) -> OversamplingPlan:
    """The plan of round ``round_no``; aligned to ``index``'s classes when given."""
    run = RunDir.of(run_dir)
    where = str(run.plan_path(round_no))
    plan = OversamplingPlan.from_dict(run.read_plan(round_no), where=where)
    if index is not None:
        plan = plan.aligned_to(index.class_ids, index.class_names, where=where)
    return plan


def write_plan(run_dir, round_no: int, plan: OversamplingPlan):
    """Write the plan of round ``round_no`` into the run folder (atomically); its path."""
    return RunDir.of(run_dir).write_plan(round_no, plan.to_dict())


def plan_from_report(report: dict, **settings) -> OversamplingPlan:
    """An OversamplingPlan from a stage report's per-class F1 and mining ``settings``
    (policy, k, threshold, z, factor, cap, scheme, recipe)."""
    keys = ("policy", "k", "threshold", "z", "factor", "cap", "scheme", "recipe")
    kw = {k: settings.get(k) for k in keys if settings.get(k) is not None}
    if "factor" in kw:
        kw["factor"] = float(kw["factor"])
    return make_plan(f1_vector(report), [c["class_id"] for c in report["per_class"]],
                     [c["name"] for c in report["per_class"]], source=report["stage"], **kw)


def plan_round(run_dir, round_no: int | None = None, force: bool = False,
               **settings) -> tuple[int, OversamplingPlan, dict]:
    """Make and write the plan of the next round (or ``round_no``) from the latest report.

    ``settings`` override the config's ``mining:`` section. The plan of an interrupted
    round is in use and is replaced only with ``force`` (the round must then be redone).
    Returns ``(round_no, plan, source_report)``.
    """
    run_dir = check_run_dir(run_dir)
    report = latest_report(run_dir)
    nxt = next_round(run_dir)
    round_no = nxt if round_no is None else int(round_no)
    if round_no in done_rounds(run_dir):
        raise AugmineError(f"round {round_no} of {run_dir} is already done; plan round {nxt} "
                           "instead (omit --round)")
    if not force and round_status(run_dir, round_no) == "interrupted":
        raise AugmineError(
            f"round {round_no} of {run_dir} was interrupted and its plan "
            f"{run_dir.plan_path(round_no)} is in use; resume the round with `augmine mine "
            f"round {run_dir}`, or replace its plan with `augmine mine plan {run_dir} --force` "
            "(plus your plan options) and then restart the round with "
            f"`augmine mine round {run_dir} --redo`")
    opts = mining_settings(run_dir, **settings)
    plan = plan_from_report(report, **opts)
    write_plan(run_dir, round_no, plan)
    return round_no, plan, report


def format_plan(plan: OversamplingPlan, counts) -> list[str]:
    """Lines for people: each chosen class, its factor and its old -> new share of an epoch."""
    counts = np.asarray(counts)
    lines = [f"{'class':<32} {'F1':>6} {'factor':>7} {'images':>7} {'old share':>10} "
             f"{'new share':>10}"]
    f1 = (plan.policy or {}).get("f1") or {}
    for row in plan.summary(counts):
        f = f1.get(row["name"])
        lines.append(f"{row['name'][:32]:<32} {'-' if f is None else f'{f:.3f}':>6} "
                     f"{row['factor']:>7.2f} {row['count']:>7} {row['old_share']:>10.2%} "
                     f"{row['new_share']:>10.2%}")
    old, new = plan.expected_share(counts)
    weak = list(plan.weak)
    lines.append(f"{len(weak)} of {plan.num_classes} classes chosen: {old[weak].sum():.1%} of an "
                 f"epoch before, {new[weak].sum():.1%} after; epoch {int(counts.sum())} -> "
                 f"{plan.expected_epoch_length(counts):.0f} images"
                 + (f"; weak classes use recipe {plan.recipe}" if plan.recipe else ""))
    return lines


# --------------------------------------------------------------------------- rounds

@dataclass
class RoundResult:
    """Outcome of :func:`run_round`: round number, plan, mode, the report dict, and
    ``resumed`` (an interrupted attempt was continued)."""

    round: int
    plan: OversamplingPlan
    report: dict
    mode: str
    resumed: bool = False


def _before_report(run: RunDir, round_no: int) -> dict:
    """The report a round starts from: the previous round's, else the last phase's."""
    reports = [r for r in list_stage_reports(run)
               if stage_sort_key(r["stage"]) < stage_sort_key(f"round-{round_no}")]
    if not reports:
        raise AugmineError(f"{run.reports_dir} holds no phase report; train the run first "
                           "(`augmine train`)")
    return reports[-1]


def round_status(run_dir, round_no: int) -> str:
    """``"done"`` (report written), ``"interrupted"`` (started, no report) or ``"new"``."""
    run = RunDir.of(run_dir)
    if report_done(run, f"round-{round_no}"):
        return "done"
    try:
        started = run.snapshot_meta(round_no) is not None
    except AugmineError:
        started = True              # a broken start record: it started (--redo rebuilds it)
    if started:
        return "interrupted"
    return "new"


def latest_round(run_dir) -> int | None:
    """The highest round that was started (done or interrupted), or None: the one ``--redo``
    redoes."""
    run = RunDir.of(run_dir)
    n = next_round(run)
    if round_status(run, n) != "new":
        return n
    done = done_rounds(run)
    return done[-1] if done else None


def run_round(run_dir, epochs: int | None = None, mode: str | None = None,
              round_no: int | None = None, redo: bool = False, progress: bool = True,
              extra_callbacks=(), skip_bad: bool = False, **plan_settings) -> RoundResult:
    """Run mining round ``round_no`` (default: the next one) on ``run_dir`` (path or RunDir).

    Uses the round's saved plan when it exists, else makes and saves it from the previous
    report (``plan_settings`` override the config's ``mining:`` section). ``mode``:
    ``oversample`` (the plan's factors feed the pipeline) or ``class-weight`` (the same
    emphasis as Keras loss weights); default the config's ``mining.class_weight``, else
    oversample. Trains ``epochs`` extra epochs (default ``mining.epochs``, else 5) from
    the last checkpoint (``extra_callbacks`` join the fit; every image is checked first,
    bad ones left out with ``skip_bad``), evaluates on val and writes the
    ``round-N`` report with before/after.

    An interrupted round is resumed by calling this again (same plan and mode; its epochs
    unless ``epochs`` is given; the trainer continues from its last committed epoch). A
    done round raises unless ``redo``, which puts the run back to the round's start and
    trains it again (the latest round started only: :func:`latest_round`).
    """
    run = check_run_dir(run_dir)
    if not run.has_checkpoint("last"):
        raise AugmineError(f"{run.checkpoint('last')} is missing: {run} has no checkpoint to "
                           "continue from; train the run first (`augmine train`)")
    settings = mining_settings(run, **plan_settings)
    if mode is None:
        mode = "class-weight" if settings.get("class_weight") else "oversample"
    if mode not in MODES:
        raise AugmineError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    asked_epochs = epochs
    epochs = int(epochs if epochs is not None else settings.get("epochs") or 5)
    if epochs < 1:
        raise AugmineError(f"--epochs {epochs}: train at least 1 epoch")
    done = done_rounds(run)
    nxt = next_round(run)
    latest = latest_round(run)
    if round_no is None:
        round_no = latest if redo and latest else nxt
    stage = f"round-{round_no}"
    status = round_status(run, round_no)
    cmd = f"augmine mine round {run}"
    if status == "done" and not redo:
        again = (f", or train it again from its start with `{cmd} --redo`"
                 if round_no == latest else "")
        raise AugmineError(f"round {round_no} of {run} is already done (report {stage}); "
                           f"run round {nxt} with `{cmd}`{again}")
    if status == "new" and round_no != nxt:
        raise AugmineError(f"round {round_no}: the next round of {run} is {nxt}; rounds run "
                           f"in order: run it with `{cmd}`")
    if redo and latest and round_no < latest:
        raise AugmineError(f"round {round_no} of {run} is followed by round {latest}; only the "
                           f"latest round can be redone: `{cmd} --redo` redoes round {latest}")
    if redo and status == "new":
        redo = False                               # nothing to redo: a plain first attempt
    if status == "interrupted" and not redo and asked_epochs is None:
        # resume with the epochs the interrupted attempt was started with
        epochs = int(run.read_state().get("rounds", {}).get(stage, {}).get("epochs") or epochs)

    index = checked_run_index(run, skip_bad, progress)
    before = _before_report(run, round_no)
    if run.plan_path(round_no).is_file():
        plan = read_plan(run, round_no, index)
    else:
        plan = plan_from_report(before, **settings).aligned_to(index.class_ids, index.class_names)
    meta = {"round": round_no, "mode": mode, "plan": plan.to_dict(), "start_stage": before["stage"]}

    resumed = False
    if status == "interrupted" and not redo:
        started = run.snapshot_meta(round_no) or {}
        if started.get("mode") != mode:
            was = started.get("mode")
            raise AugmineError(f"round {round_no} of {run} was interrupted in {was} mode; "
                               f"resume it with `{cmd} --mode {was}`, or "
                               f"restart it in {mode} mode with `{cmd} --mode {mode} --redo`")
        if started.get("plan") != meta["plan"]:
            raise AugmineError(f"round {round_no} of {run} was interrupted with another plan "
                               f"than {run.plan_path(round_no)} holds now; restart it from its "
                               f"start with this plan: `{cmd} --redo`")
        resumed = True
        log.info("round %d: resuming the interrupted attempt", round_no)
    else:
        if status != "new":                        # redo of a done or interrupted round
            run.restore(round_no)
        run.remove_report(stage)                   # the old report, or stray partial files
        run.snapshot(round_no, meta)
    write_plan(run, round_no, plan)

    if mode == "oversample":
        kwargs: dict[str, Any] = {"plan": plan}
    else:
        kwargs = {"class_weight": plan.class_weight(index.class_counts("train"))}
    model = train_extra_epochs(run, index, epochs, stage=stage, progress=progress,
                               extra_callbacks=extra_callbacks, **kwargs)
    size, batch_size = evaluation_settings(run.config)
    y_true, probs = evaluate_model(model, index, size, batch_size)
    state = run.read_state()
    report = write_stage_report(
        run, stage, y_true, probs, list(index.class_ids), list(index.class_names),
        meta={"kind": "round", "round": round_no, "mode": mode, "size": size, "epochs": epochs,
              "epochs_done": state.get("epochs_done"), "step": state.get("step"),
              "start_stage": before["stage"], "resumed": resumed},
        plan=plan, before=before, val_paths=index.val.paths)
    return RoundResult(round_no, plan, report, mode, resumed)


def find_suspects(run_dir, per_class: int = 10, classes=None,
                  skip_bad: bool = False) -> tuple[str, list[dict]]:
    """Training images of weak classes with the lowest self-confidence under the run's
    last checkpoint. ``classes``: names/ids (default: the latest report's plan, else its
    weakest). Images are checked first (bad ones left out with ``skip_bad``, or when the run
    left them out). Writes the latest stage's ``suspects.csv``; returns ``(csv path, rows)``."""
    from .mining import suspect_samples

    run = check_run_dir(run_dir)
    if not run.has_checkpoint("last"):
        raise AugmineError(f"{run.checkpoint('last')} is missing: {run} has no checkpoint; "
                           "train it first")
    rep = latest_report(run)
    index = checked_run_index(run, skip_bad)
    if classes:
        chosen = [index.class_index(c) for c in classes]
    else:
        names = (rep.get("plan") or {}).get("weak_names") or rep["weakest"]
        chosen = [index.class_index(n) for n in names]
    size, batch_size = evaluation_settings(run.config)
    model = load_checkpoint(run.checkpoint("last"), compile=False)
    _, probs = evaluate_model(model, index, size, batch_size, split="train")
    rows = suspect_samples(index.train.labels, probs, chosen, per_class=per_class,
                           paths=index.train.paths, class_names=list(index.class_names))
    buf = io.StringIO()
    cols = ["name", "path", "self_confidence", "predicted_name", "predicted_prob"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows([{**r, "self_confidence": f"{r['self_confidence']:.4f}",
                  "predicted_prob": f"{r['predicted_prob']:.4f}"} for r in rows])
    out = run.suspects_path(rep["stage"])
    atomic.write_text(out, buf.getvalue())
    return str(out), rows
