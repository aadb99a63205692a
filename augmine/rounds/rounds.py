"""Mining rounds on a run folder: plan -> extra epochs on the weak classes -> report.

A round N uses the run's saved plan of round N (written by :func:`write_plan`, or made
from the latest report and the config's ``mining:`` defaults when absent), trains extra
epochs from the run's last checkpoint through the trainer
(:func:`augmine.train.phases.train_extra_epochs`), re-evaluates and writes the ``round-N``
report with the per-class F1 before and after. The files live where
:class:`~augmine.runs.rundir.RunDir` puts them.

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

import numpy as np

from augmine.core import atomic
# the modes (oversample, class-weight, recipe, pairs) and their control live in augmine.rounds.arms
from augmine.rounds.arms import (COMPARE_MODES, MODES, arm, arm_inputs, arm_length, compare_length,  # noqa: F401
                   describe_arm, format_pairs)
from augmine.core.errors import AugmineError
from augmine.runs.checkpoints import evaluation_settings
from augmine.train.evaluation import evaluate_model
from augmine.analysis.effects import effect_note, effect_table, effect_warning, f1_losses
from augmine.analysis.metrics import confusion_matrix, f1_scores, f1_vector
from augmine.analysis.plans import OversamplingPlan, make_plan, partner_classes, with_partners
from augmine.analysis.splits import apply_holdout, selection_split
from augmine.analysis.reports import (latest_report, list_stage_reports, load_predictions, report_done,
                      stage_sort_key, write_stage_report)
from augmine.runs.rundir import RunDir
from augmine.train.phases import checked_run_index, train_extra_epochs

log = logging.getLogger("augmine")

SELECTIONS = ("val-half", "holdout")
DEFAULT_STRONG_RECIPE = "tiny-imagenet-14.yaml"   # compare's recipe mode, unless set
BOOTSTRAP_REPS = 1000
# the round's own LR: a triangle from the phase's min_lr up to this share of the way to its
# max_lr and back, over the round's steps (mining.min_lr / mining.max_lr override)
ROUND_LR_SHARE = 0.1
_ROUND_RE = re.compile(r"^round-(\d+)$")
# mining defaults when the run's config has no ``mining:`` section
MINING_DEFAULTS = {"policy": "bottom-k", "k": 20, "threshold": None, "z": None, "factor": 3.0,
                   "cap": None, "epochs": 5, "recipe": None, "selection": None,
                   "control": True, "min_lr": None, "max_lr": None, "partners": 1}


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
    """The run's dataset (``data:`` in its config) as a DatasetIndex; with ``mining.holdout``
    its held-out slice of train is the ``holdout`` split (never trained on)."""
    from augmine.data.layouts import load_index

    run = RunDir.of(run_dir)
    return apply_holdout(load_index(run.recorded_data()), run.config.mining.holdout,
                         run.config.seed)


def selection_method(run_dir, selection: str | None = None) -> str:
    """Where weak classes are chosen: ``val-half`` (a seeded, stratified half of val; the
    other half measures the round) or ``holdout`` (the held-out slice of train, set by
    ``mining.holdout`` before training; all of val measures). Default: holdout when the
    run has one, else val-half."""
    run = RunDir.of(run_dir)
    held = run.config.mining.holdout
    selection = selection or ("holdout" if held else "val-half")
    if selection not in SELECTIONS:
        raise AugmineError(f"selection {selection!r}: choose one of {', '.join(SELECTIONS)}")
    if selection == "holdout" and not held:
        raise AugmineError(f"{run.config_path}: selection 'holdout' needs `mining: {{holdout: "
                           "0.1}}` in the training config before training; use val-half")
    return selection


def selection_report(run_dir, index, report: dict, selection: str) -> dict:
    """Per-class F1 (with support) on the selection images, for choosing weak classes.

    ``val-half``: ``report``'s saved val predictions on the selection half; ``holdout``:
    the run's last checkpoint on the held-out slice of train. Returns a report-like dict
    ``{stage, selection, images, per_class: [{class_id, name, f1, support}], confusion}``
    (``confusion``: (C, C) counts on the selection images, row = true class, as lists)."""
    run = RunDir.of(run_dir)
    if selection == "val-half":
        y = np.asarray(index.val.labels, np.int64)
        probs = _stage_probs(run, report["stage"], index)
        sel, _ = selection_split(index.val.labels, run.config.seed)
        y, pred = y[sel], probs[sel].argmax(axis=1)
    else:
        from augmine.runs.checkpoints import load_checkpoint

        size, batch_size = evaluation_settings(run.config)
        model = load_checkpoint(run.checkpoint("last"), compile=False)
        y, probs = evaluate_model(model, index, size, batch_size, split="holdout")
        pred = probs.argmax(axis=1)
    f1 = f1_scores(y, pred, index.num_classes)
    support = np.bincount(y, minlength=index.num_classes)
    return {"stage": report["stage"], "selection": selection, "images": int(len(y)),
            "per_class": [{"class_id": cid, "name": name, "f1": float(f1[i]),
                           "support": int(support[i])}
                          for i, (cid, name) in enumerate(zip(index.class_ids, index.class_names))],
            "confusion": confusion_matrix(y, pred, index.num_classes).tolist()}


def selected_plan(run_dir, index, report: dict, selection: str, settings: dict) -> OversamplingPlan:
    """The plan made from the selection images' F1 (see :func:`selection_report`); its
    ``policy`` records the selection, the chosen classes' selection support and their
    confusion partners on the selection images (``settings["partners"]`` each, default 1;
    :func:`~augmine.analysis.plans.with_partners`; the ``pairs`` mode oversamples them too)."""
    sel = selection_report(run_dir, index, report, selection)
    plan = plan_from_report(sel, **settings).aligned_to(index.class_ids, index.class_names)
    plan.policy.update({"selection": selection, "selection_images": sel["images"],
                        "support": {sel["per_class"][i]["name"]: sel["per_class"][i]["support"]
                                    for i in plan.weak}})
    return with_partners(plan, np.asarray(sel["confusion"]), settings.get("partners") or 1)


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
    index = load_run_index(run_dir)
    plan = selected_plan(run_dir, index, report, selection_method(run_dir, opts.get("selection")),
                         opts)
    write_plan(run_dir, round_no, plan)
    return round_no, plan, report


def format_plan(plan: OversamplingPlan, counts) -> list[str]:
    """Lines for people: each chosen class, its factor and its old -> new share of an epoch."""
    counts = np.asarray(counts)
    lines = [f"{'class':<32} {'F1':>6} {'factor':>7} {'images':>7} {'old share':>10} "
             f"{'new share':>10}"]
    f1 = (plan.policy or {}).get("f1") or {}
    if (plan.policy or {}).get("selection"):
        lines.insert(0, f"(F1 on the {plan.policy['selection']} selection images: "
                        f"{plan.policy.get('selection_images')} images)")
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
                 + ("" if plan.factors[weak].max(initial=1.0) > 1 else
                    " (factor 1: no extra samples)")
                 + (f"; weak classes use recipe {plan.recipe}" if plan.recipe else ""))
    pairs = format_pairs(plan)
    if pairs:
        lines.append("confusion partners on the selection images (oversampled with them by "
                     "--mode pairs):")
        lines += pairs
    return lines


# --------------------------------------------------------------------------- rounds

@dataclass
class RoundResult:
    """Outcome of :func:`run_round`: round number, plan, mode, the report dict (its
    ``effect`` holds before/after/control with intervals), and ``resumed`` (an
    interrupted attempt was continued)."""

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


def round_steps(index, inputs: dict, batch_size: int, epochs: int) -> int:
    """Optimizer steps of ``epochs`` epochs fed with ``inputs`` (see
    :func:`~augmine.rounds.arms.arm_inputs`)."""
    from augmine.feed.sampling import epoch_length

    return epochs * -(-epoch_length(index, inputs.get("plan")) // batch_size)


def round_lr_range(cfg, settings: dict) -> tuple[float, float]:
    """``(min_lr, max_lr)`` of a round's triangle: ``mining.min_lr`` else the schedule's
    ``min_lr``; ``mining.max_lr`` else ``ROUND_LR_SHARE`` of the way up to its ``max_lr``."""
    sched = cfg.schedule   # unset keys mean create_schedule's defaults: 0.001 and 0.05
    lo = float(settings.get("min_lr") or getattr(sched, "min_lr", None) or 0.001)
    top = float(getattr(sched, "max_lr", None) or max(lo, 0.05))
    hi = float(settings.get("max_lr") or lo + ROUND_LR_SHARE * max(0.0, top - lo))
    if hi < lo:
        raise AugmineError(f"mining max_lr {hi} is below min_lr {lo}; raise max_lr")
    return lo, hi


def round_schedule(min_lr: float, max_lr: float, start_step: int, steps: int):
    """The round's own learning rate: one triangular cycle ``min_lr -> max_lr -> min_lr``
    over ``steps`` optimizer steps from ``start_step`` (a Keras schedule)."""
    from augmine.model.schedules import PhaseCyclicLR

    return PhaseCyclicLR([{"start": int(start_step), "length": max(1, int(steps)),
                           "min_lr": float(min_lr), "max_lr": float(max_lr)}], name="RoundLR")


def schedule_callback(schedule):
    """A Keras callback that gives the optimizer ``schedule`` when the fit begins."""
    from augmine.core.runtime import import_keras

    keras = import_keras()

    class UseSchedule(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.model.optimizer.learning_rate = schedule

    return UseSchedule()


def _train_arm(run: RunDir, index, epochs: int, stage: str, inputs: dict, schedule,
               progress: bool, extra_callbacks=(), label: str | None = None):
    """Train one arm (round, control or mode) and return its val probabilities (N, C);
    ``label`` starts each printed epoch line (which arm it is)."""
    model = train_extra_epochs(run, index, epochs, stage=stage, progress=progress,
                               extra_callbacks=[schedule_callback(schedule), *extra_callbacks],
                               label=label, **inputs)
    size, batch_size = evaluation_settings(run.config)
    return evaluate_model(model, index, size, batch_size)


def measure_round(index, selection: str, seed: int, chosen, before_probs, after_probs,
                  control_probs=None, reps: int = BOOTSTRAP_REPS, partners=()) -> dict:
    """The round's effect on the measurement images (never the selection ones).

    ``*_probs`` (N_val, C) on the whole val split; measured on its other half
    (``val-half``) or all of it (``holdout``). ``partners``: class indices measured apart
    (the "partner F1" row; pairs rounds). Returns ``{selection, measurement,
    measurement_images, control, chosen, partners, table (see effect_table), per_class:
    [{index, name, support, before, after, control, change, effect}], losers, warning,
    note}`` (``warning``: a fall whose 95% interval excludes zero; ``note``: a fall within
    the noise, "no measurable change")."""
    y = np.asarray(index.val.labels, np.int64)
    meas = selection_split(y, seed)[1] if selection == "val-half" else np.arange(len(y))
    yt = y[meas]
    pred = {k: None if p is None else np.asarray(p)[meas].argmax(axis=1)
            for k, p in (("before", before_probs), ("after", after_probs),
                         ("control", control_probs))}
    num = index.num_classes
    table = effect_table(yt, pred["before"], pred["after"], pred["control"], num_classes=num,
                         chosen=list(chosen), reps=reps, seed=seed, partners=list(partners))
    f1 = {k: None if v is None else f1_scores(yt, v, num) for k, v in pred.items()}
    support = np.bincount(yt, minlength=num)
    names = list(index.class_names)
    per_class = [{"index": i, "name": names[i], "support": int(support[i]),
                  "before": float(f1["before"][i]), "after": float(f1["after"][i]),
                  "control": None if f1["control"] is None else float(f1["control"][i]),
                  "change": float(f1["after"][i] - f1["before"][i]),
                  "effect": None if f1["control"] is None else
                  float(f1["after"][i] - f1["control"][i])} for i in range(num)]
    has_control = control_probs is not None
    ref = f1["control"] if has_control else f1["before"]
    return {"selection": selection,
            "measurement": "the other half of val" if selection == "val-half" else "all of val",
            "measurement_images": int(len(yt)), "control": has_control,
            "reference": "control" if has_control else "before", "reps": int(reps),
            "chosen": [names[i] for i in chosen], "partners": [names[i] for i in partners],
            "table": table, "per_class": per_class,
            "losers": f1_losses(names, support, ref, f1["after"]),
            "warning": effect_warning(table, has_control), "note": effect_note(table, has_control)}


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
              extra_callbacks=(), control: bool | None = None, skip_bad: bool = False,
              echo=None, **plan_settings) -> RoundResult:
    """Run mining round ``round_no`` (default: the next one) on ``run_dir`` (path or RunDir).

    Uses the round's saved plan when it exists, else makes and saves it from the selection
    images of the previous report (see :func:`selection_method`; ``plan_settings`` override
    the config's ``mining:`` section). ``mode``: ``oversample`` (the plan's factors feed
    the pipeline), ``class-weight`` (the same emphasis as Keras loss weights) or ``pairs``
    (each chosen class and its confusion partners on the selection images, recorded in the
    plan, oversampled alike; the partners' F1 is measured apart); default the config's
    ``mining.class_weight``, else oversample (see :mod:`augmine.rounds.arms`). Trains ``epochs`` extra epochs
    (default ``mining.epochs``, else 5) from the last checkpoint on the round's own LR
    (:func:`round_schedule`; ``extra_callbacks`` join the fit; every image is checked
    first, bad ones left out with ``skip_bad``) and, unless ``control`` is
    False (default ``mining.control``, else True), a control from the same start with the
    same steps, LR and seeds and plain sampling (``branches/round-N/control``). Evaluates on
    val and writes the ``round-N`` report; its ``effect`` (:func:`measure_round`) compares
    before, after and control on the measurement images with bootstrap intervals.

    An interrupted round (or control) is resumed by calling this again (same plan and
    mode; its epochs unless ``epochs`` is given). A done round raises unless ``redo``, which
    puts the run back to the round's start and trains it (and its control) again (the latest
    round started only: :func:`latest_round`). ``echo`` gets a header line before each arm
    trains (default: the log); each epoch line names its arm (``round-N``, ``round-N
    control``).
    """
    say = echo or log.info
    run = check_run_dir(run_dir)
    if not run.has_checkpoint("last"):
        raise AugmineError(f"{run.checkpoint('last')} is missing: {run} has no checkpoint to "
                           "continue from; train the run first (`augmine train`)")
    settings = mining_settings(run, **plan_settings)
    if mode is None:
        mode = "class-weight" if settings.get("class_weight") else "oversample"
    spec = arm(mode, MODES)
    control = bool(settings.get("control", True)) if control is None else bool(control)
    asked_epochs = epochs
    epochs = int(epochs if epochs is not None else settings.get("epochs") or 5)
    if epochs < 1:
        raise AugmineError(f"--epochs {epochs}: train at least 1 epoch")
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
    selection = selection_method(run, settings.get("selection"))
    if run.plan_path(round_no).is_file():
        plan = read_plan(run, round_no, index)
        asked = plan_settings.get("partners")
        if spec.partners and ("partners" not in plan.policy or
                              asked not in (None, plan.policy.get("partners_per_class"))):
            # a plan from before partners (or other --partners): found on the same images
            sel = selection_report(run, index, before,
                                   plan.policy.get("selection") or selection)
            plan = with_partners(plan, np.asarray(sel["confusion"]), settings["partners"])
    else:
        plan = selected_plan(run, index, before, selection, settings)
    selection = (plan.policy or {}).get("selection") or selection
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
        start_step = int(started.get("start_step", 0))
        log.info("round %d: resuming the interrupted attempt", round_no)
    else:
        if status != "new":                        # redo of a done or interrupted round
            run.restore(round_no)
        run.remove_report(stage)                   # the old report, or stray partial files
        run.remove_branches(stage)                 # the old control
        start_step = int(run.read_state().get("step", 0))
        run.snapshot(round_no, {**meta, "start_step": start_step})
    write_plan(run, round_no, plan)

    cfg = run.config
    batch_size = cfg.batch_size
    options = {}
    if mode == "gentle":
        from augmine.rounds.gentle import gentle_recipe

        options["gentle_recipe"] = gentle_recipe(run, index, plan, selection, stage,
                                                 resume=resumed, progress=progress)
    inputs = arm_inputs(mode, plan, index, batch_size, **options)
    steps = round_steps(index, inputs, batch_size, epochs)
    lr = round_lr_range(cfg, settings)
    schedule = round_schedule(*lr, start_step, steps)
    before_probs = _stage_probs(run, before["stage"], index)
    head = f"round {round_no} ({mode})"
    say(f"{head}: training the round arm, {epochs} epoch{'s' if epochs != 1 else ''} "
        f"({steps} steps)")
    y_true, probs = _train_arm(run, index, epochs, stage, inputs, schedule, progress,
                               extra_callbacks, label=stage)
    control_probs = None
    if control:
        say(f"{head}: training the control (plain sampling, the same {steps} steps)")
        branch = run.branch(stage, "control", round_no)
        _, control_probs = _train_arm(
            branch, index, epochs, stage,
            arm_inputs("control", plan, index, batch_size,
                       length=arm_length(mode, plan, index)),
            schedule, progress, label=f"{stage} control")
    partners = partner_classes(plan) if spec.partners else []
    effect = measure_round(index, selection, cfg.seed, plan.weak, before_probs, probs,
                           control_probs, partners=partners)
    state = run.read_state()
    report = write_stage_report(
        run, stage, y_true, probs, list(index.class_ids), list(index.class_names),
        meta={"kind": "round", "round": round_no, "mode": mode, "size": evaluation_settings(cfg)[0],
              "epochs": epochs, "epochs_done": state.get("epochs_done"),
              "step": state.get("step"), "steps": steps, "lr": list(lr),
              "start_stage": before["stage"], "resumed": resumed,
              **({"partners": plan.policy.get("partners")} if spec.partners else {})},
        plan=plan, effect=effect, before=before, val_paths=index.val.paths)
    return RoundResult(round_no, plan, report, mode, resumed)


def _stage_probs(run: RunDir, stage: str, index) -> np.ndarray:
    """A stage report's saved val probabilities (N_val, C) in ``index``'s val order.

    When images were left out since the stage (``--skip-bad`` after a file went bad), the
    saved rows are matched to the remaining val images by path."""
    preds = load_predictions(run, stage)
    y_now = np.asarray(index.val.labels)
    if len(preds["y_true"]) != len(y_now) and len(preds.get("val_paths", ())) and \
            all(preds["val_paths"]):
        row = {str(p): i for i, p in enumerate(preds["val_paths"])}
        take = [row.get(str(p)) for p in index.val.paths]
        if None not in take:
            preds = {"y_true": preds["y_true"][take], "probs": preds["probs"][take]}
    if len(preds["y_true"]) != len(y_now) or not np.array_equal(preds["y_true"], y_now):
        raise AugmineError(f"{run.report_dir(stage)}: its val predictions do not match the "
                           f"dataset's {len(y_now)} val images; train that stage again on "
                           "this dataset")
    return preds["probs"]


def _ci(cell, pct: bool = False, sign: bool = False) -> str:
    if cell is None:
        return "-"
    k = 100 if pct else 1
    f = (lambda v: f"{v * k:+.1f}") if pct and sign else (lambda v: f"{v * k:.1f}") if pct \
        else (lambda v: f"{v:+.3f}") if sign else (lambda v: f"{v:.3f}")
    return f"{f(cell['value'])} [{f(cell['lo'])}, {f(cell['hi'])}]"


def format_effect(effect: dict, top: int = 5) -> list[str]:
    """Lines for people: the effect table (before, after, control, change and effect net of
    control with 95% intervals), the chosen classes, who lost and the warning."""
    lines = [f"chosen on {effect['selection']}; measured on {effect['measurement']} "
             f"({effect['measurement_images']} images, 95% bootstrap intervals, "
             f"{effect['reps']} resamples)"]
    head = f"{'':<10} {'before':>7} {'after':>7} {'control':>8} {'after-before':>24} " \
           f"{'net of control':>24}"
    lines.append(head)
    for m, row in effect["table"].items():
        pct = m == "top-1"
        val = (lambda c: "-" if c is None else  # noqa: E731
               (f"{c['value']:.1%}" if pct else f"{c['value']:.3f}"))
        lines.append(f"{m:<10} {val(row['before']):>7} {val(row['after']):>7} "
                     f"{val(row['control']):>8} {_ci(row['change'], pct, True):>24} "
                     f"{_ci(row['effect'], pct, True):>24}")
    if not effect["control"]:
        lines.append("no control round (--no-control): the effect net of control is "
                     "unmeasured; after-before mixes the round with more training")
    by_name = {c["name"]: c for c in effect["per_class"]}
    groups = [("chosen", effect["chosen"])]
    if effect.get("partners"):
        groups.append(("partner", effect["partners"]))
    for what, names in groups:
        lines.append(f"{what} classes, F1 before -> after (control) [support]:")
        for n in names:
            c = by_name[n]
            ctrl = "" if c["control"] is None else f" (control {c['control']:.3f}, net " \
                                                   f"{c['effect']:+.3f})"
            lines.append(f"  {n[:28]:<28} {c['before']:.3f} -> {c['after']:.3f}{ctrl} "
                         f"[{c['support']}]")
    losers = effect["losers"][:top]
    ref = effect["reference"]
    if losers:
        lines.append(f"F1 fell most (against the {'control' if ref == 'control' else 'start'}):")
        for c in losers:
            lines.append(f"  {c['name'][:28]:<28} {c['ref']:.3f} -> {c['after']:.3f} "
                         f"({c['delta']:+.3f}) [{c['support']}]")
    for key in ("warning", "note"):
        if effect.get(key):
            lines.append(effect[key])
    return lines


# --------------------------------------------------------------------------- compare

def compare_modes(run_dir, epochs: int | None = None, modes=COMPARE_MODES,
                  strong_recipe: str | None = None, progress: bool = True, echo=None,
                  **plan_settings) -> dict:
    """Train ``modes`` (of :data:`~augmine.rounds.arms.COMPARE_MODES`) and a control from the
    run's current checkpoint, each in its own branch (``branches/compare-step-S/<mode>``;
    the run itself is not changed), the same plan, epochs, steps (every arm's epoch
    stretched to :func:`~augmine.rounds.arms.compare_length`), LR and seeds; returns ``{"plan",
    "selection", "epochs", "steps", "effects": {mode: measure_round dict}, "group"}``. With
    ``pairs`` among the modes every mode's effect also has the partner classes' row.
    ``echo`` gets a header before each arm trains (default: the log). Running it again
    resumes unfinished branches and re-measures.
    """
    say = echo or log.info
    run = check_run_dir(run_dir)
    if not run.has_checkpoint("last"):
        raise AugmineError(f"{run.checkpoint('last')} is missing; train the run first")
    settings = mining_settings(run, **plan_settings)
    epochs = int(epochs if epochs is not None else settings.get("epochs") or 5)
    if epochs < 1:
        raise AugmineError(f"--epochs {epochs}: train at least 1 epoch")
    for m in modes:
        arm(m)
    index = load_run_index(run)
    start = latest_report(run)
    selection = selection_method(run, settings.get("selection"))
    plan = selected_plan(run, index, start, selection, settings)
    plan = OversamplingPlan(plan.factors, plan.weak, plan.class_ids, plan.class_names, None,
                            plan.policy)
    if any(arm(m).partners for m in modes):
        say("confusion partners on the selection images:")
        for line in format_pairs(plan):
            say(line)
    from augmine.core.shipped import resolve_recipe

    strong = str(resolve_recipe(strong_recipe or settings.get("recipe") or DEFAULT_STRONG_RECIPE))
    cfg = run.config
    state = run.read_state()
    start_step = int(state.get("step", 0))
    group = f"compare-step-{start_step}"
    stage = f"round-{next_round(run)}"
    batch_size = cfg.batch_size
    length = compare_length(plan, index)
    options = {"strong_recipe": strong}
    if "gentle" in modes:
        from augmine.rounds.gentle import gentle_recipe

        options["gentle_recipe"] = gentle_recipe(run, index, plan, selection, group,
                                                 resume=True, progress=progress)
    arms = {m: arm_inputs(m, plan, index, batch_size, length, **options)
            for m in (*modes, "control")}
    steps = round_steps(index, arms["control"], batch_size, epochs)
    schedule = round_schedule(*round_lr_range(cfg, settings), start_step, steps)
    before_probs = _stage_probs(run, start["stage"], index)
    probs = {}
    for i, (m, inputs) in enumerate(arms.items(), 1):
        say(f"compare: {'mode ' if m != 'control' else ''}{m} ({i}/{len(arms)}), {epochs} "
            f"epoch{'s' if epochs != 1 else ''}, {steps} steps")
        _, probs[m] = _train_arm(run.branch(group, m), index, epochs, stage, inputs, schedule,
                                 progress, label=f"compare {m}")
    partners = partner_classes(plan) if any(arm(m).partners for m in modes) else []
    effects = {m: measure_round(index, selection, cfg.seed, plan.weak, before_probs, probs[m],
                                probs["control"], partners=partners) for m in modes}
    return {"plan": plan, "selection": selection, "epochs": epochs, "steps": steps,
            "recipe": strong, "effects": effects, "group": str(run.branch_dir(group, ""))}


def format_compare(result: dict) -> list[str]:
    """One table: each mode's effect net of control (95% interval) per metric."""
    effects = result["effects"]
    first = next(iter(effects.values()))
    lines = [f"{len(result['plan'].weak)} classes ({', '.join(result['plan'].weak_names)}), "
             f"{result['epochs']} epochs = {result['steps']} steps per mode; chosen on "
             f"{first['selection']}, measured on {first['measurement']} "
             f"({first['measurement_images']} images)",
             *([f"partner classes (pairs oversamples them too): {', '.join(first['partners'])}"]
               if first.get("partners") else []),
             "effect net of control [95% bootstrap interval]:",
             f"{'mode':<13}" + "".join(f" {m:>24}" for m in first["table"])]
    for mode, eff in effects.items():
        lines.append(f"{mode:<13}" + "".join(
            f" {_ci(row['effect'], m == 'top-1', True):>24}" for m, row in eff["table"].items()))
    ctrl = first["table"]
    lines.append(f"{'control':<13}" + "".join(
        f" {(format(row['control']['value'], '.1%') if m == 'top-1' else format(row['control']['value'], '.3f')) + ' (absolute)':>24}"
        for m, row in ctrl.items()))
    for mode, eff in effects.items():
        for key in ("warning", "note"):
            if eff.get(key):
                lines.append(f"{mode}: {eff[key]}")
    return lines


# --------------------------------------------------------------------------- suspects

def find_suspects(run_dir, per_class: int = 10, classes=None, in_sample: bool = False,
                  skip_bad: bool = False) -> tuple[str, list[dict]]:
    """Images of weak classes with the lowest self-confidence under the run's last
    checkpoint, scored out of sample: the held-out slice of train when the run has one,
    else val (``in_sample=True``: the training images, which the model has fit; labelled
    so). ``classes``: names/ids (default: the latest report's plan, else its weakest).
    Images are checked first (bad ones left out with ``skip_bad``, or when the run left
    them out). Writes the latest stage's ``suspects.csv``; returns ``(csv path, rows)``; each row's
    ``split`` and ``scored`` say where and how it was scored."""
    from augmine.analysis.suspects import suspect_samples
    from augmine.runs.checkpoints import load_checkpoint

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
    split = "train" if in_sample else ("holdout" if "holdout" in index.splits else "val")
    size, batch_size = evaluation_settings(run.config)
    model = load_checkpoint(run.checkpoint("last"), compile=False)
    _, probs = evaluate_model(model, index, size, batch_size, split=split)
    sp = index.split(split)
    rows = suspect_samples(sp.labels, probs, chosen, per_class=per_class,
                           paths=sp.paths, class_names=list(index.class_names))
    scored = "in sample (trained on)" if in_sample else "out of sample"
    for r in rows:
        r.update({"split": split, "scored": scored})
    buf = io.StringIO()
    cols = ["name", "path", "split", "scored", "self_confidence", "predicted_name",
            "predicted_prob"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows([{**r, "self_confidence": f"{r['self_confidence']:.4f}",
                  "predicted_prob": f"{r['predicted_prob']:.4f}"} for r in rows])
    out = run.suspects_path(rep["stage"])
    atomic.write_text(out, buf.getvalue())
    return str(out), rows
