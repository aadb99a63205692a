"""Mining rounds on a run folder: plan -> extra epochs on the weak classes -> report; the
round against its start and its control with intervals, each training seed's arm
(``--seeds N``), and the rule that keeps a round only when it helps.

A round N uses the run's saved plan of round N (written by ``mine plan``,
:func:`augmine.rounds.plans.plan_round`, or made from the latest report and the config's
``mining:`` defaults when absent), trains extra epochs from the run's last checkpoint
through the trainer (:func:`augmine.train.phases.train_extra_epochs`) on the round's own
learning rate, trains a control from the same start (plain sampling, the same steps, LR
and seeds), re-evaluates and writes the ``round-N`` report with the effect against the
start and the control (:func:`measure_round`). The files live
where :class:`~augmine.runs.rundir.RunDir` puts them.

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

Keras is imported only when a round trains.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from augmine.analysis.effects import (cell_text, effect_note, effect_table, effect_warning,
                                      f1_losses, round_metric_names, round_metrics, seed_effect)
from augmine.analysis.metrics import f1_scores
from augmine.analysis.plans import OversamplingPlan, partner_classes, selection_split, with_partners
from augmine.analysis.reports import write_stage_report
from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.rounds.arms import (arm, arm_inputs, arm_length, model_options, MODES,
                                 twin_of_control, with_partner_emphasis)
from augmine.rounds.plans import (mining_settings, RoundState, selected_plan, selection_method,
                                  selection_report)
from augmine.runs.factories import evaluation_settings
from augmine.runs.rundir import RunDir
from augmine.runs.state import plan_digest
from augmine.train.evaluation import evaluate_model
from augmine.train.phases import checked_run_index, train_extra_epochs


# =========================================================================== measure
# A round's effect against its start and its control, on the measurement images only
# (the other half of val for ``val-half``, all of val for ``holdout``), with bootstrap
# intervals; the statistics themselves are pure numpy in :mod:`augmine.analysis.effects`.

BOOTSTRAP_REPS = 1000


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


# =========================================================================== seeds
# Training seeds of a round and of ``mine compare`` (``--seeds N``): where each seed's arm
# trains and the effect over seeds and measurement images together.
#
# Seed 1 is what a round trains without ``--seeds`` (the run's config seed, the usual folders:
# the run itself and ``branches/round-N/control``, or ``branches/compare-step-S/<mode>``);
# seed s >= 2 trains every arm again from the same start with seed ``config seed + (s - 1) *
# SEED_STRIDE`` (sampling, augmentation, Keras' initialisation of anything new) in a branch
# ``<name>-seed-s`` beside it (:func:`seed_branch`). Each branch resumes like a run, so a killed
# ``--seeds 3`` round goes on at the seed (and epoch) it was in.
#
# :func:`seeds_effect` is :func:`~augmine.rounds.runner.measure_round` of seed 1 with every
# "net of control" cell replaced by :func:`~augmine.analysis.effects.seed_effect` over all
# the seeds (a two-stage bootstrap: seeds, then images), each cell keeping its ``per_seed``
# values (the seed-to-seed spread).

SEED_STRIDE = 10_007     # seed s trains with config seed + (s - 1) * SEED_STRIDE


def checked_seeds(seeds) -> int:
    """``seeds`` as a whole number >= 1 (None: 1); a one-line error otherwise."""
    if seeds is None:
        return 1
    if isinstance(seeds, bool) or int(seeds) != seeds or int(seeds) < 1:
        raise AugmineError(f"--seeds {seeds!r}: train each arm at least once (a whole number "
                           ">= 1)")
    return int(seeds)


def arm_seed(base_seed: int, s: int) -> int:
    """The training seed of seed number ``s`` (1-based; seed 1 is ``base_seed`` itself)."""
    return int(base_seed) + (int(s) - 1) * SEED_STRIDE


def seed_branch(name: str, s: int) -> str:
    """The branch name of arm ``name`` at seed ``s``: ``name`` for seed 1, else
    ``name-seed-s``."""
    return name if s == 1 else f"{name}-seed-{s}"


def train_seeds(arms: dict, seeds: int, base_seed: int,
                train: Callable[[str, object, int, str], np.ndarray],
                echo: Callable[[str], None] | None = None) -> dict[str, list]:
    """Seeds 2..``seeds`` of every arm: ``arms`` ``{name: inputs}``; ``train(branch_name,
    inputs, seed, label)`` trains one (resuming where it stopped) and returns its val probs.
    Returns ``{name: [probs of seed 2, ...]}``."""
    out = {name: [] for name in arms}
    for s in range(2, seeds + 1):
        for name, inputs in arms.items():
            if echo:
                echo(f"seed {s}/{seeds}: {name}")
            out[name].append(train(seed_branch(name, s), inputs, arm_seed(base_seed, s),
                                   f"{name} seed {s}"))
    return out


def seeds_effect(index, selection: str, seed: int, chosen, before_probs,
                 after_probs: Sequence, control_probs: Sequence, partners=(),
                 reps: int = BOOTSTRAP_REPS) -> dict:
    """The effect of an arm trained at S seeds (``after_probs``/``control_probs``: S arrays
    (N_val, C) each, seed 1 first) on the measurement images: :func:`measure_round` of seed 1
    (its before/after/control columns), with ``seeds`` S and each metric's ``effect`` cell
    from :func:`seed_effect` (value: the mean over seeds; 95% interval over seeds and images;
    ``per_seed``: each seed's own effect). One seed: :func:`measure_round` unchanged."""
    effect = measure_round(index, selection, seed, chosen, before_probs, after_probs[0],
                           control_probs[0], reps=reps, partners=partners)
    if len(after_probs) == 1:
        return effect
    if len(control_probs) != len(after_probs):
        raise AugmineError(f"seeds: {len(after_probs)} trained arms but {len(control_probs)} "
                           "controls; run the command again to finish them")
    y = np.asarray(index.val.labels, np.int64)
    meas = selection_split(y, seed)[1] if selection == "val-half" else np.arange(len(y))
    chosen = [int(c) for c in chosen]
    partners = [int(p) for p in partners if int(p) not in chosen]
    num = index.num_classes

    def net(y_true, after, control):
        return (round_metrics(y_true, after, num, chosen, partners)
                - round_metrics(y_true, control, num, chosen, partners))

    samples = [(y[meas], np.asarray(a)[meas].argmax(axis=1), np.asarray(c)[meas].argmax(axis=1))
               for a, c in zip(after_probs, control_probs)]
    over = seed_effect(samples, net, reps=reps, seed=seed)
    for j, metric in enumerate(round_metric_names(partners)):
        effect["table"][metric]["effect"] = {
            "value": float(over["value"][j]), "lo": float(over["lo"][j]),
            "hi": float(over["hi"][j]), "per_seed": [float(v) for v in over["per_seed"][:, j]]}
    effect["seeds"] = len(after_probs)
    effect["warning"] = effect_warning(effect["table"], True)
    effect["note"] = effect_note(effect["table"], True)
    return effect


def seed_spread(effect: dict) -> list[str]:
    """Lines for people on an effect over several seeds: what the intervals cover and the
    range of each metric's net effect over the seeds; [] for one seed."""
    seeds = effect.get("seeds", 1)
    if seeds < 2:
        return []
    cells = []
    for metric, row in effect["table"].items():
        per = (row.get("effect") or {}).get("per_seed")
        if per:
            k, d, unit = (100, 1, " pt") if metric == "top-1" else (1, 3, "")
            cells.append(f"{metric} {min(per) * k:+.{d}f} to {max(per) * k:+.{d}f}{unit}")
    return [f"net of control: mean over {seeds} training seeds, 95% interval over seeds and "
            "images (two-stage bootstrap); before/after/control columns: seed 1",
            f"seed-to-seed range of the net effect: {'; '.join(cells)}"]


# =========================================================================== keep
# The rule that keeps a round only when it helps, judged on the selection images.
#
# After a round, its model, its control and its start are scored on the selection images
# only (the half of val that chose the classes, or the held-out slice of train; never the
# measurement images). :func:`keep_decision` (pure numpy) keeps the round when the chosen
# classes' mean F1 is above both the start's and the control's and its top-1 is not below
# either by more than ``mining.keep_tolerance`` points (its default is on the config schema,
# :class:`~augmine.runs.config.MiningConfig`); else the run goes on
# from the better of control and start (higher top-1, then chosen F1; a tie goes to the
# control). :func:`apply_decision` makes the run's ``last.keras`` that model;
# :func:`rule_outcome` measures what the user ends up with against the control on the
# measurement images.

def _scores(y_true, pred, num_classes: int, chosen) -> dict:
    values = round_metrics(y_true, pred, num_classes, chosen)
    return {"chosen F1": float(values[0]), "top-1": float(values[-2])}


def keep_decision(y_true, start_pred, round_pred, control_pred=None, *, num_classes: int,
                  chosen, tolerance: float) -> dict:
    """Keep a round or not, from predicted labels on the selection images.

    ``y_true`` (N,) labels; ``*_pred`` (N,) predicted labels of the round's start, its
    model and its control (None: no control, the start alone is the reference); ``chosen``:
    the round's class indices; ``tolerance``: top-1 points the round may lose
    (``mining.keep_tolerance``). Returns
    ``{kept, goes_on_from ("round", "control" or "start"), tolerance, images, scores: {arm:
    {"chosen F1", "top-1"}}, reason}``."""
    y_true = np.asarray(y_true)
    arms = {"round": round_pred, "start": start_pred}
    if control_pred is not None:
        arms["control"] = control_pred
    scores = {k: _scores(y_true, np.asarray(v), num_classes, chosen) for k, v in arms.items()}
    mine = scores["round"]
    refs = [k for k in ("control", "start") if k in scores]
    short = [f"chosen F1 {mine['chosen F1']:.3f} not above the {k}'s "
             f"{scores[k]['chosen F1']:.3f}" for k in refs
             if not mine["chosen F1"] > scores[k]["chosen F1"]]
    short += [f"top-1 {mine['top-1']:.1%} more than {tolerance:g} pt below the {k}'s "
              f"{scores[k]['top-1']:.1%}" for k in refs
              if mine["top-1"] < scores[k]["top-1"] - tolerance / 100 - 1e-12]
    kept = not short
    better = max(refs, key=lambda k: (scores[k]["top-1"], scores[k]["chosen F1"],
                                      k == "control"))
    return {"kept": kept, "goes_on_from": "round" if kept else better,
            "tolerance": float(tolerance), "images": int(len(y_true)), "scores": scores,
            "reason": "; ".join(short) if short else
            f"chosen F1 rose above the {' and '.join(refs)}'s and top-1 held"}


def selection_labels(index, selection: str, seed: int, probs: dict, checkpoints: dict,
                     cfg=None) -> tuple:
    """``(y_true, {arm: predicted labels})`` on the selection images: the selection half of
    ``probs`` (val, ``val-half``), or each arm's checkpoint of ``checkpoints`` evaluated on
    the held-out slice of train (``holdout``, at ``cfg``'s evaluation size and batch)."""
    if selection == "val-half":
        y = np.asarray(index.val.labels, np.int64)
        sel = selection_split(y, seed)[0]
        return y[sel], {k: np.asarray(p)[sel].argmax(axis=1) for k, p in probs.items()}
    from augmine.runs.factories import evaluation_settings
    from augmine.train.evaluation import predict_checkpoint

    out, y = {}, None
    size, batch_size = evaluation_settings(cfg)
    for k, path in checkpoints.items():
        y, p = predict_checkpoint(path, index, size, batch_size, split="holdout")
        out[k] = p.argmax(axis=1)
    return y, out


def apply_decision(run: RunDir, decision: dict, source) -> None:
    """Make ``source`` (the chosen model's ``last.keras``) the run's ``last.keras`` unless the
    round is kept. The state (step, epochs, history) stays as the round left it: the start's
    model is saved with its optimizer at the state's step, so the LR schedule goes on (a
    control trained the same steps already)."""
    if decision["goes_on_from"] == "round":
        return
    if decision["goes_on_from"] == "control":
        atomic.copy_file(source, run.checkpoint("last"))
        return
    from augmine.runs.factories import load_checkpoint, save_checkpoint

    model = load_checkpoint(source)
    model.optimizer.iterations.assign(run.read_state().step)
    save_checkpoint(run, model)


def rule_outcome(effect_of, final_probs, decision: dict | None = None) -> dict:
    """What the user ends up with, on the measurement images: ``effect_of(probs)`` (a
    :func:`~augmine.rounds.runner.measure_round` of ``probs`` as the round's model) of the
    model the run goes on from; ``{metric: {value, lo, hi}}`` net of the control (against
    the start without one)."""
    table = effect_of(final_probs)["table"]
    return {m: row["effect"] or row["change"] for m, row in table.items()}


def format_rule(rule: dict) -> list[str]:
    """Lines for people: the decision on the selection images and what it gives on the
    measurement images (which model the run goes on from:
    :func:`augmine.rounds.text.current_model_line`)."""
    s = rule["scores"]
    nums = ", ".join(f"{k} chosen F1 {v['chosen F1']:.3f} top-1 {v['top-1']:.1%}"
                     for k, v in s.items())
    verdict = "kept" if rule["kept"] else "rejected"
    lines = [f"rule on the {rule['images']} selection images ({nums}; tolerance "
             f"{rule['tolerance']:g} pt): {verdict}: {rule['reason']}"]
    out = rule.get("outcome")
    if out:
        ref = "the control" if rule.get("against") == "control" else "the start"
        lines.append(f"what the run ends up with against {ref} on the measurement images: "
                     + ", ".join(cell_text(m, out[m]) for m in ("chosen F1", "top-1")))
    return lines


def _decision_files(run: RunDir, round_no: int) -> tuple[Path, Path]:
    snap = run.snapshot_dir(round_no)
    return snap / "rule.json", snap / "round-probs.npy"


def clear_decision(run: RunDir, round_no: int) -> None:
    """Forget round N's recorded decision (the round is about to be trained afresh)."""
    for path in _decision_files(run, round_no):
        path.unlink(missing_ok=True)


def judge_round(run: RunDir, index, selection: str, seed: int, round_no: int, chosen,
                probs: dict, tolerance: float, measure) -> tuple[dict, np.ndarray]:
    """Decide round N (:func:`keep_decision` on the selection images), make the run go on
    from the chosen model (:func:`apply_decision`) and measure the outcome
    (:func:`rule_outcome` with ``measure``). ``probs``: val probs of ``start``, ``round``
    and ``control`` (None: no control). Returns ``(decision, the round arm's val probs)``.

    The round's probs and the decision are written to the round's start snapshot before
    the run's checkpoint changes, so a round killed after that point resumes with the same
    decision and numbers (the run's ``last.keras`` then holds the other model)."""
    rule_path, probs_path = _decision_files(run, round_no)
    saved = atomic.read_json(rule_path, f"restart the round with `augmine mine round "
                                        f"{run.path} --redo`")
    stage = f"round-{round_no}"
    sources = {"start": run.snapshot_dir(round_no) / run.checkpoint("last").name,
               "round": run.checkpoint("last"),
               "control": RunDir(run.branch_dir(stage, "control")).checkpoint("last")}
    have = {k: p for k, p in probs.items() if p is not None}
    if saved and probs_path.is_file():
        decision, have["round"] = saved, np.load(probs_path)
    else:
        y, preds = selection_labels(index, selection, seed, have,
                                    {k: sources[k] for k in have}, run.config)
        decision = keep_decision(y, preds["start"], preds["round"], preds.get("control"),
                                 num_classes=index.num_classes, chosen=chosen,
                                 tolerance=tolerance)
        decision["against"] = "control" if "control" in have else "start"
        decision["outcome"] = rule_outcome(measure, have[decision["goes_on_from"]], decision)
        buf = io.BytesIO()
        np.save(buf, np.asarray(have["round"]))
        atomic.write_bytes(probs_path, buf.getvalue())
        atomic.write_json(rule_path, decision)
    apply_decision(run, decision, sources[decision["goes_on_from"]])
    return decision, have["round"]


# =========================================================================== runner

log = logging.getLogger("augmine")

# the round's own LR: a triangle from the phase's min_lr up to this share of the way to its
# max_lr and back, over the round's steps (mining.min_lr / mining.max_lr override)
ROUND_LR_SHARE = 0.1


@dataclass
class RoundResult:
    """Outcome of :func:`run_round`: round number, plan, mode, the report dict (its
    ``effect`` holds before/after/control with intervals), ``resumed`` (an interrupted
    attempt was continued) and the run folder."""

    round: int
    plan: OversamplingPlan
    report: dict
    mode: str
    resumed: bool = False
    run: str = ""


# --------------------------------------------------------------------------- schedule

def round_steps(index, inputs: dict, batch_size: int, epochs: int) -> int:
    """Optimizer steps of ``epochs`` epochs fed with ``inputs`` (see
    :func:`~augmine.rounds.arms.arm_inputs`)."""
    from augmine.feed.sampling import epoch_length
    from augmine.feed.sampling import steps_per_epoch

    return epochs * steps_per_epoch(epoch_length(index, inputs.get("plan")), batch_size)


def round_lr_range(cfg, settings: dict) -> tuple[float, float]:
    """``(min_lr, max_lr)`` of a round's triangle: ``mining.min_lr`` else the (resolved)
    schedule's ``min_lr``; ``mining.max_lr`` else ``ROUND_LR_SHARE`` of the way up to its
    ``max_lr``."""
    sched = cfg.schedule
    lo = float(sched.min_lr if settings["min_lr"] is None else settings["min_lr"])
    hi = float(lo + ROUND_LR_SHARE * max(0.0, sched.max_lr - lo)
               if settings["max_lr"] is None else settings["max_lr"])
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


def stage_epochs_done(run: RunDir, stage: str) -> int:
    """Epochs of ``stage`` that ``run`` (the run or an arm's branch) has committed."""
    if not run.has_state():
        return 0
    return run.read_state().stage_done(stage)


def round_progress(epochs: int, arm_runs, stage: str):
    """The progress of a round, ``mine compare`` or ``mine auto`` over every arm it trains,
    seed arms (``--seeds``) included: ``epochs`` per arm, one arm per run folder of
    ``arm_runs`` (paths or RunDirs, made or not yet), whose committed epochs of ``stage``
    count as done (a tqdm counter, :func:`~augmine.train.fit.run_progress`: ``5/8 epochs,
    ... ETA 01:30``). The one ETA of these commands."""
    from augmine.train.fit import run_progress

    arm_runs = [RunDir.of(r) for r in arm_runs]
    return run_progress(epochs * len(arm_runs),
                        sum(stage_epochs_done(r, stage) for r in arm_runs))


def progress_callback(bar, label: str, echo):
    """A Keras callback that after every epoch advances ``bar`` (:func:`round_progress`) and
    prints ``label: 3/4 epochs, 00:10 elapsed, ETA 00:05`` (the arm, its stage and the
    time left for the whole round), one line beside Keras' bars or the epoch lines."""
    from augmine.core.runtime import import_keras

    keras = import_keras()

    class ArmProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            bar.update(1)
            echo(f"{label}: {bar}")

    return ArmProgress()


def train_arm(run: RunDir, index, epochs: int, stage: str, inputs: dict, schedule,
              progress: bool, extra_callbacks=(), label: str | None = None, bar=None,
              echo=None, seed: int | None = None):
    """Train one arm (round, control or ``mine compare`` mode) in ``run`` on ``schedule``;
    returns its val ``(y_true (N_val,), probs (N_val, C))``. ``label`` starts each printed
    epoch line (which arm it is); with ``bar`` (:func:`round_progress`) a line with the
    whole round's ETA follows each epoch (through ``echo``, default the log); ``seed``: the
    training seed (default the config's). Arms of the same model in one process reuse its
    traced steps (:func:`~augmine.train.evaluation.reusable_model`)."""
    extra = [schedule_callback(schedule), *extra_callbacks]
    if bar is not None:
        extra.append(progress_callback(bar, label or stage, echo or log.info))
    last: list = []          # the last epoch's validation: no second prediction pass
    model = train_extra_epochs(run, index, epochs, stage=stage, progress=progress,
                               extra_callbacks=extra, label=label, seed=seed, reuse=True,
                               predictions=last, **inputs)
    if last:
        return last[0]
    size, batch_size = evaluation_settings(run.config)
    return evaluate_model(model, index, size, batch_size)


def checked_epochs(epochs: int | None, settings: dict) -> int:
    """``epochs`` (``--epochs``), else ``mining.epochs``; a one-line error below 1."""
    epochs = int(epochs if epochs is not None else settings["epochs"])
    if epochs < 1:
        raise AugmineError(f"--epochs {epochs}: train at least 1 epoch")
    return epochs


# --------------------------------------------------------------------------- a round

def _pick_round(state: RoundState, round_no: int | None, redo: bool) -> tuple[int, str, bool]:
    """``(round_no, status, redo)`` of the round to run; one-line errors when it cannot run."""
    run, nxt, latest = state.run, state.next, state.latest
    if round_no is None:
        round_no = latest if redo and latest else nxt
    status = state.status(round_no)
    cmd = f"augmine mine round {run}"
    if status == "done" and not redo:
        again = (f", or train it again from its start with `{cmd} --redo`"
                 if round_no == latest else "")
        raise AugmineError(f"round {round_no} of {run} is already done (report "
                           f"round-{round_no}); run round {nxt} with `{cmd}`{again}")
    if status == "new" and round_no != nxt:
        raise AugmineError(f"round {round_no}: the next round of {run} is {nxt}; rounds run "
                           f"in order: run it with `{cmd}`")
    if redo and latest and round_no < latest:
        raise AugmineError(f"round {round_no} of {run} is followed by round {latest}; only the "
                           f"latest round can be redone: `{cmd} --redo` redoes round {latest}")
    return round_no, status, redo and status != "new"   # redo of a new round: a first attempt


def _round_plan(state: RoundState, round_no: int, index, before: dict, selection: str,
                settings: dict, partners_asked, spec) -> OversamplingPlan:
    """The round's saved plan (aligned to ``index``; partners found when the mode needs
    them and the plan lacks them), else the plan made from the selection images."""
    if not state.has_plan(round_no):
        return selected_plan(state, index, before, selection, settings)
    plan = state.read_plan(round_no, index)
    if spec.partners and ("partners" not in plan.policy or
                          partners_asked not in (None, plan.policy.get("partners_per_class"))):
        # a plan from before partners (or other --partners): found on the same images
        sel = selection_report(state, index, before, plan.policy.get("selection") or selection)
        plan = with_partners(plan, np.asarray(sel["confusion"]), settings["partners"])
    return plan


def _begin(run: RunDir, round_no: int, status: str, redo: bool, meta: dict) -> tuple[bool, int]:
    """Resume an interrupted round (same mode and plan) or start it afresh from its start
    snapshot (a redo puts the snapshot back first). Returns ``(resumed, start_step)``."""
    stage = f"round-{round_no}"
    cmd = f"augmine mine round {run}"
    if status == "interrupted" and not redo:
        started = run.snapshot_meta(round_no) or {}
        mode = meta["mode"]
        if started.get("mode") != mode:
            was = started.get("mode")
            raise AugmineError(f"round {round_no} of {run} was interrupted in {was} mode; "
                               f"resume it with `{cmd} --mode {was}`, or "
                               f"restart it in {mode} mode with `{cmd} --mode {mode} --redo`")
        if started.get("plan_sha256") != plan_digest(meta["plan"]):
            raise AugmineError(f"round {round_no} of {run} was interrupted with another plan "
                               f"than {run.plan_path(round_no)} holds now; restart it from its "
                               f"start with this plan: `{cmd} --redo`")
        log.info("round %d: resuming the interrupted attempt", round_no)
        return True, int(started.get("start_step", 0))
    if status != "new":                        # redo of a done or interrupted round
        run.restore(round_no)
    run.remove_report(stage)                   # the old report, or stray partial files
    run.remove_branches(stage)                 # the old control
    clear_decision(run, round_no)              # and the old rule's decision
    start_step = run.read_state().step
    run.snapshot(round_no, {**meta, "start_step": start_step})
    return False, start_step


def run_round(run_dir, epochs: int | None = None, mode: str | None = None,
              round_no: int | None = None, redo: bool = False, progress: bool = True,
              extra_callbacks=(), control: bool | None = None, skip_bad: bool = False,
              echo=None, seeds: int | None = None, **plan_settings) -> RoundResult:
    """Run mining round ``round_no`` (default: the next one) on ``run_dir`` (path, RunDir
    or :class:`~augmine.rounds.plans.RoundState`).

    Uses the round's saved plan when it exists, else makes and saves it from the selection
    images of the previous report (see :func:`~augmine.rounds.plans.selection_method`;
    ``plan_settings`` override the config's ``mining:`` section). ``mode``: ``oversample``
    (the plan's factors feed the pipeline), ``class-weight`` (the same emphasis as Keras
    loss weights), ``pairs`` (each chosen class and its confusion partners on the
    selection images, recorded in the plan, oversampled alike; the partners' F1 is measured
    apart), ``gentle``, ``distill`` (oversample, plus a distillation term against the
    round's start model for every class; with ``partners`` given the partners are
    oversampled too) or ``head`` (pairs' sampling, only the head trains); default the config's ``mining.class_weight``, else oversample (see
    :mod:`augmine.rounds.arms`). Trains ``epochs`` extra epochs (default ``mining.epochs``)
    from the last checkpoint on the round's own LR (:func:`round_schedule`;
    ``extra_callbacks`` join the fit; every image is checked first, bad ones left out with
    ``skip_bad``) and, unless ``control`` is False (default ``mining.control``),
    a control from the same start with the same steps, LR and seeds and plain sampling
    (``branches/round-N/control``). Evaluates on val and writes the ``round-N`` report; its
    ``effect`` (:func:`~augmine.rounds.runner.measure_round`) compares before, after and
    control on the measurement images with bootstrap intervals. The keep rule
    (:func:`~augmine.rounds.runner.judge_round`, on the selection images) then decides which
    model the run goes on from: the round's, else the better of control and start (its
    ``last.keras``; ``meta.rule`` of the report, whose predictions are that model's).

    An interrupted round (or control) is resumed by calling this again (same plan and
    mode; its epochs unless ``epochs`` is given). A done round raises unless ``redo``, which
    puts the run back to the round's start and trains it (and its control) again (the latest
    round started only: :attr:`RoundState.latest`). ``echo`` gets a header line before each
    arm trains (default: the log); each epoch line names its arm (``round-N``, ``round-N
    control``).
    """
    say = echo or log.info
    state = RoundState.of(run_dir)
    run = state.run
    if not run.has_checkpoint("last"):
        raise AugmineError(f"{run.checkpoint('last')} is missing: {run} has no checkpoint to "
                           "continue from; train the run first (`augmine train`)")
    settings = mining_settings(run, **plan_settings)
    if mode is None:
        mode = "class-weight" if settings["class_weight"] else "oversample"
    spec = arm(mode, MODES)
    control = bool(settings["control"] if control is None else control)
    seeds = checked_seeds(seeds)
    if seeds > 1 and not control:
        raise AugmineError("--seeds needs the control (the effect over seeds is net of it); "
                           "drop --no-control")
    asked_epochs = epochs
    epochs = checked_epochs(epochs, settings)
    round_no, status, redo = _pick_round(state, round_no, redo)
    stage = f"round-{round_no}"
    if status == "interrupted" and not redo and asked_epochs is None:
        # resume with the epochs the interrupted attempt was started with
        attempt = run.read_state().rounds.get(stage)
        epochs = attempt.epochs if attempt is not None else epochs

    index = checked_run_index(run, skip_bad, progress)
    before = state.before(round_no)
    selection = selection_method(run, settings["selection"])
    plan = _round_plan(state, round_no, index, before, selection, settings,
                       plan_settings.get("partners"), spec)
    plan = with_partner_emphasis(plan, mode == "distill" and
                                 plan_settings.get("partners") is not None)
    selection = (plan.policy or {}).get("selection") or selection
    reason = twin_of_control(run, mode, plan, index, strong_recipe=plan.recipe)
    if reason:
        others = ", ".join(m for m in MODES if m != mode)
        raise AugmineError(f"round {round_no} of {run}: {reason}; choose another mode "
                           f"(--mode {others}) or plan emphasis the control lacks "
                           f"(`augmine mine plan {run} --factor 3`)")
    meta = {"round": round_no, "mode": mode, "plan": plan.to_dict(), "start_stage": before["stage"]}
    resumed, start_step = _begin(run, round_no, status, redo, meta)
    state.write_plan(round_no, plan)

    cfg = run.config
    batch_size = cfg.batch_size
    options = model_options(cfg.mining, run.snapshot_checkpoint(round_no))
    if mode == "gentle":
        from augmine.rounds.arms import gentle_recipe

        options["gentle_recipe"] = gentle_recipe(run, index, plan, selection, stage,
                                                 resume=resumed, progress=progress)
    inputs = arm_inputs(mode, plan, index, batch_size, **options)
    steps = round_steps(index, inputs, batch_size, epochs)
    lr = round_lr_range(cfg, settings)
    schedule = round_schedule(*lr, start_step, steps)
    before_probs = state.probs(before["stage"], index)
    head = f"round {round_no} ({mode})"
    say(f"{head}: training the round arm, {epochs} epoch{'s' if epochs != 1 else ''} "
        f"({steps} steps)")
    bar = round_progress(epochs, [run, *([run.branch_dir(stage, "control")] if control else []),
                                  *(run.branch_dir(stage, seed_branch(name, s))
                                    for s in range(2, seeds + 1)
                                    for name in ("round", "control"))], stage)
    y_true, probs = train_arm(run, index, epochs, stage, inputs, schedule, progress,
                              extra_callbacks, label=stage, bar=bar, echo=say)
    run.keep_best(round_no)        # "best" is never chosen by val images that measure rounds
    control_probs = None
    if control:
        say(f"{head}: training the control (plain sampling, the same {steps} steps)")
        _, control_probs = train_arm(
            run.branch(stage, "control", round_no), index, epochs, stage,
            arm_inputs("control", plan, index, batch_size, length=arm_length(mode, plan, index)),
            schedule, progress, label=f"{stage} control", bar=bar, echo=say)
    rule, probs = judge_round(
        run, index, selection, cfg.seed, round_no, plan.weak,
        {"start": before_probs, "round": probs, "control": control_probs},
        float(settings["keep_tolerance"]),
        lambda p: measure_round(index, selection, cfg.seed, plan.weak, before_probs, p,
                                control_probs))
    final_probs = {"round": probs, "start": before_probs,
                   "control": control_probs}[rule["goes_on_from"]]
    more = train_seeds(
        {"round": inputs, "control": arm_inputs("control", plan, index, batch_size,
                                                length=arm_length(mode, plan, index))},
        seeds, cfg.seed, lambda name, arm_in, seed, label: train_arm(
            run.branch(stage, name, round_no), index, epochs, stage, arm_in, schedule,
            progress, label=f"{stage} {label}", seed=seed, bar=bar, echo=say)[1], echo=say)
    partners = partner_classes(plan) if spec.partners else []
    effect = seeds_effect(index, selection, cfg.seed, plan.weak, before_probs,
                          [probs, *more["round"]], [control_probs, *more["control"]],
                          partners=partners)
    final = run.read_state()
    report = write_stage_report(
        run, stage, y_true, final_probs, list(index.class_ids), list(index.class_names),
        meta={"kind": "round", "round": round_no, "mode": mode, "size": evaluation_settings(cfg)[0],
              "epochs": epochs, "epochs_done": final.epochs_done,
              "step": final.step, "steps": steps, "lr": list(lr),
              "start_stage": before["stage"], "resumed": resumed, "seeds": seeds,
              "rule": rule,
              **({"partners": plan.policy.get("partners")} if spec.partners else {})},
        plan=plan, effect=effect, before=before, val_paths=index.val.paths)
    return RoundResult(round_no, plan, report, mode, resumed, str(run))
