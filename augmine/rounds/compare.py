"""``mine compare`` (every round mode and a control trained side by side from the run's
checkpoint, in branches beside the run) and ``mine auto`` (the modes tried, the rule, what
the user got).
"""

from __future__ import annotations

import logging

from augmine.analysis.plans import OversamplingPlan, partner_classes
from augmine.analysis.reports import write_stage_report
from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.rounds.arms import (arm, arm_inputs, compare_length, COMPARE_MODES, format_pairs,
                                 MODE_TABLE, model_options, twin_of_control, with_partner_emphasis)
from augmine.rounds.plans import (load_run_index, mining_settings, RoundState, selected_plan,
                                  selection_method)
from augmine.rounds.runner import (checked_epochs, checked_seeds, format_rule, keep_decision,
                                   measure_round, round_lr_range, round_progress, round_schedule,
                                   round_steps, seed_branch, seeds_effect, selection_labels,
                                   train_arm, train_seeds)
from augmine.rounds.text import format_effect
from augmine.runs.factories import evaluation_settings
from augmine.runs.rundir import RunDir


log = logging.getLogger("augmine")


def compare_modes(run_dir, epochs: int | None = None, modes=COMPARE_MODES,
                  strong_recipe: str | None = None, progress: bool = True, echo=None,
                  seeds: int | None = None, **plan_settings) -> dict:
    """Train ``modes`` (of :data:`~augmine.rounds.arms.COMPARE_MODES`) and a control from the
    run's current checkpoint, each in its own branch (``branches/compare-step-S/<mode>``;
    the run itself is not changed), the same plan, epochs, steps (every arm's epoch
    stretched to :func:`~augmine.rounds.arms.compare_length`), LR and seeds; returns ``{"plan",
    "selection", "epochs", "steps", "recipe", "effects": {mode: measure_round dict},
    "group", "skipped": {mode: why}, "probs": {"start" and each arm: val probs of seed 1}}``
    (a mode that would train exactly what the control trains is skipped,
    :mod:`augmine.rounds.arms`). ``run_dir``: a path, RunDir or
    :class:`~augmine.rounds.plans.RoundState`.
    With ``pairs`` among the modes every mode's effect also has the partner classes' row.
    ``echo`` gets a header before each arm trains (default: the log). ``seeds`` N > 1
    trains every arm again at seeds 2..N (``<mode>-seed-s`` branches; effects over seeds
    and images: :mod:`augmine.rounds.runner`). Running it again resumes unfinished branches
    and re-measures.
    """
    say = echo or log.info
    state = RoundState.of(run_dir)
    run = state.run
    if not run.has_checkpoint("last"):
        raise AugmineError(f"{run.checkpoint('last')} is missing; train the run first")
    settings = mining_settings(run, **plan_settings)
    epochs = checked_epochs(epochs, settings)
    seeds = checked_seeds(seeds)
    for m in modes:
        arm(m)
    index = load_run_index(run)
    start = state.latest_report
    selection = selection_method(run, settings["selection"])
    plan = selected_plan(state, index, start, selection, settings)
    plan = with_partner_emphasis(OversamplingPlan(
        plan.factors, plan.weak, plan.class_ids, plan.class_names, None, plan.policy),
        plan_settings.get("partners") is not None)
    if any(arm(m).partners for m in modes):
        say("confusion partners on the selection images:")
        for line in format_pairs(plan):
            say(line)
    from augmine.core.runtime import resolve_recipe

    strong = str(resolve_recipe(strong_recipe or settings["recipe"] or settings["compare_recipe"]))
    cfg = run.config
    start_step = run.read_state().step
    group = f"compare-step-{start_step}"
    stage = f"round-{state.next}"
    batch_size = cfg.batch_size
    length = compare_length(plan, index)
    options = {"strong_recipe": strong, **model_options(cfg.mining, run.checkpoint("last"))}
    skipped = {m: why for m in modes
               if (why := twin_of_control(run, m, plan, index, length, strong))}
    for m, why in skipped.items():
        say(f"compare: skipping {why}")
    modes = tuple(m for m in modes if m not in skipped)
    if not modes:
        raise AugmineError(f"{run}: every mode asked for would train exactly what the control "
                           "trains (see above); nothing to compare")
    if "gentle" in modes:
        from augmine.rounds.arms import gentle_recipe

        options["gentle_recipe"] = gentle_recipe(run, index, plan, selection, group,
                                                 resume=True, progress=progress)
    arms = {m: arm_inputs(m, plan, index, batch_size, length, **options)
            for m in (*modes, "control")}
    steps = round_steps(index, arms["control"], batch_size, epochs)
    schedule = round_schedule(*round_lr_range(cfg, settings), start_step, steps)
    before_probs = state.probs(start["stage"], index)
    probs = {}
    bar = round_progress(epochs, [run.branch_dir(group, seed_branch(m, s))
                                  for s in range(1, seeds + 1) for m in arms], stage)
    for i, (m, inputs) in enumerate(arms.items(), 1):
        say(f"compare: {'mode ' if m != 'control' else ''}{m} ({i}/{len(arms)}), {epochs} "
            f"epoch{'s' if epochs != 1 else ''}, {steps} steps")
        _, probs[m] = train_arm(run.branch(group, m), index, epochs, stage, inputs, schedule,
                                progress, label=f"compare {m}", bar=bar, echo=say)
    more = train_seeds(arms, seeds, cfg.seed, lambda name, inputs, seed, label: train_arm(
        run.branch(group, name), index, epochs, stage, inputs, schedule, progress,
        label=f"compare {label}", seed=seed, bar=bar, echo=say)[1], echo=say)
    partners = partner_classes(plan) if any(arm(m).partners for m in modes) else []
    effects = {m: seeds_effect(index, selection, cfg.seed, plan.weak, before_probs,
                               [probs[m], *more[m]], [probs["control"], *more["control"]],
                               partners=partners) for m in modes}
    return {"plan": plan, "selection": selection, "epochs": epochs, "steps": steps,
            "seeds": seeds, "probs": {"start": before_probs, **probs}, "recipe": strong,
            "effects": effects, "skipped": skipped, "group": str(run.branch_dir(group, ""))}


# =========================================================================== auto
# ``mine auto``: the one command of mining. A round that tries the modes and keeps the best
# one that passes the rule, or none.
#
# Round N of ``mine auto`` (:func:`auto_round`):
#
# 1. chooses the weak classes on the selection images (the plan's policy, as ``mine plan``);
# 2. trains each mode and one control from the run's checkpoint in branches, the same plan,
# steps, LR and seeds (:func:`~augmine.rounds.compare.compare_modes`; ``--seeds`` too);
# 3. judges every mode with the keep rule on the selection images
# (:func:`~augmine.rounds.runner.keep_decision` against the start and the control) and keeps
# the passing mode with the highest chosen-class F1 there, or none: then the run goes on
# from the better of control and start;
# 4. makes the run go on from that model (the branch's ``last.keras``, ``state.json`` and
# history; the best checkpoints stay) and writes the ``round-N`` report: what the user
# got against the control on the measurement images, with intervals.
#
# Resumable: the run as round N found it is snapshotted first (``mode: auto``); a killed
# ``mine auto`` puts that snapshot back, finds the finished branches done and trains the rest.
# The report, written last, makes the round done (``mine round --redo`` redoes it as a round).


# the modes ``mine auto`` tries by default, cheapest first (those MODE_TABLE has): the head
# alone, distillation against the start, milder augmentation, loss weights, then extra
# samples; the keep rule rejects what harms (``head`` lowered top-1 on tiny-imagenet-20). ``recipe`` is left out (a stronger recipe on a weak class lost every time).
AUTO_ORDER = ("head", "distill", "gentle", "class-weight", "oversample", "pairs")


def default_modes() -> tuple[str, ...]:
    """:data:`AUTO_ORDER`'s modes that :data:`~augmine.rounds.arms.MODE_TABLE` has."""
    return tuple(m for m in AUTO_ORDER if m in MODE_TABLE)


def stage_one_echo(echo):
    """``echo`` for :func:`~augmine.rounds.compare.compare_modes` inside ``mine auto``: its
    lines start ``auto: stage 1/2, `` instead of ``compare: `` (``auto: stage 1/2, training
    mode head (1/3), ...``). The ETA is the round-wide one every epoch prints
    (:func:`~augmine.rounds.runner.round_progress`, seed arms included)."""
    def say(line: str) -> None:
        if line.startswith("compare: "):
            rest = line.removeprefix("compare: ")
            verb = "" if rest.startswith("skipping") else "training "
            line = f"auto: stage 1/2, {verb}{rest}"
        echo(line)
    return say


def _adopt(run: RunDir, branch: RunDir) -> None:
    """The run goes on from ``branch``'s model: its last checkpoint, history and state."""
    for src, dst in ((branch.checkpoint("last"), run.checkpoint("last")),
                     (branch.history_path, run.history_path), (branch.state_path,
                                                               run.state_path)):
        atomic.copy_file(src, dst)


def auto_round(run_dir, modes=None, epochs: int | None = None, seeds: int | None = None,
               progress: bool = True, echo=None, **plan_settings) -> dict:
    """Run round N of ``run_dir`` as ``mine auto`` (see the module doc). ``modes``: default
    :func:`default_modes`. Returns ``{"round", "report", "decisions": {mode: decision},
    "kept": mode or None, "goes_on_from", "compare": compare_modes' result}``."""
    say = echo or log.info
    modes = tuple(modes or default_modes())
    for m in modes:
        arm(m)
    state = RoundState.of(run_dir)
    run = state.run
    round_no = state.next
    started = run.snapshot_meta(round_no)
    if started is not None and started.get("mode") != "auto":
        raise AugmineError(f"round {round_no} of {run} was interrupted as a {started.get('mode')} "
                           f"round; finish it with `augmine mine round {run}` or restart it "
                           f"with `augmine mine round {run} --redo`")
    if started is not None:
        say(f"auto: resuming round {round_no}")
        run.restore(round_no)
        state = RoundState.read(run)
    settings = mining_settings(run, **plan_settings)
    res = compare_modes(state, epochs=epochs, modes=modes, progress=progress, seeds=seeds,
                        echo=stage_one_echo(say), **plan_settings)
    plan, selection, probs = res["plan"], res["selection"], res["probs"]
    modes = tuple(m for m in modes if m in res["effects"])   # compare skips no-op modes
    if not modes:
        raise AugmineError(f"mine auto: none of the modes would train anything its control "
                           f"does not; plan more emphasis (`augmine mine plan {run} --factor "
                           "3`) or choose other --modes")
    start = state.latest_report
    state.write_plan(round_no, plan)
    if started is None:
        run.snapshot(round_no, {"round": round_no, "mode": "auto", "plan": plan.to_dict(),
                                "start_stage": start["stage"],
                                "start_step": run.read_state().step})
    say(f"auto: stage 2/2, the keep rule on the {selection} selection images")
    index = load_run_index(run)
    group = RunDir(res["group"])
    branches = {m: RunDir(group.path / m) for m in (*modes, "control")}
    y, preds = selection_labels(
        index, selection, run.config.seed, probs,
        {"start": run.checkpoint("last"),
         **{m: b.checkpoint("last") for m, b in branches.items()}}, run.config)
    tol = float(settings["keep_tolerance"])
    decisions = {m: keep_decision(y, preds["start"], preds[m], preds["control"],
                                  num_classes=index.num_classes, chosen=plan.weak,
                                  tolerance=tol) for m in modes}
    passed = [m for m in modes if decisions[m]["kept"]]
    kept = max(passed, key=lambda m: (decisions[m]["scores"]["round"]["chosen F1"],
                                      decisions[m]["scores"]["round"]["top-1"]), default=None)
    goes_on = kept or decisions[modes[0]]["goes_on_from"]
    if goes_on != "start":
        _adopt(run, branches[goes_on])
    final = probs[goes_on]
    effect = (res["effects"][kept] if kept else
              measure_round(index, selection, run.config.seed, plan.weak, probs["start"],
                            final, probs["control"]))
    now = run.read_state()
    report = write_stage_report(
        run, f"round-{round_no}", index.val.labels, final, list(index.class_ids),
        list(index.class_names),
        meta={"kind": "round", "round": round_no, "mode": kept or "none", "auto": True,
              "size": evaluation_settings(run.config)[0], "epochs": res["epochs"],
              "epochs_done": now.epochs_done, "step": now.step,
              "steps": res["steps"], "start_stage": start["stage"], "seeds": res["seeds"],
              "goes_on_from": goes_on, "decisions": decisions},
        plan=plan, effect=effect, before=start, val_paths=index.val.paths)
    return {"round": round_no, "report": report, "decisions": decisions, "kept": kept,
            "goes_on_from": goes_on, "compare": res}


def format_auto(result: dict) -> list[str]:
    """Lines for people: each mode's verdict on the selection images, the mode kept (or
    none), which model the run goes on from and what that gives against the control on the
    measurement images (:func:`~augmine.rounds.text.format_effect`'s table)."""
    lines = [f"round {result['round']} (mine auto) chose {len(result['compare']['plan'].weak)} "
             f"classes: {', '.join(result['compare']['plan'].weak_names)}"]
    for mode, decision in result["decisions"].items():
        lines.append(f"  {mode}: {format_rule(decision)[0]}")
    kept = result["kept"]
    lines.append(f"kept: {kept}" if kept else "no mode passed the rule on the selection images")
    goes_on = result["goes_on_from"]
    lines.append(f"the run goes on from the {goes_on}"
                 f"{'' if goes_on in ('start', 'control') else ' mode'}'s model")
    lines.append("what the run ends up with, on the measurement images "
                 "(after = the model the run goes on from):")
    return lines + format_effect(result["report"]["effect"])
