"""``mine compare``: every round mode and a control trained side by side from the run's
checkpoint, in branches beside the run (the run itself is not changed)."""

from __future__ import annotations

import logging

from augmine.analysis.plans import OversamplingPlan, partner_classes
from augmine.core.errors import AugmineError
from augmine.rounds.arms import (COMPARE_MODES, arm, arm_inputs, compare_length, format_pairs,
                                 model_options, with_partner_emphasis)
from augmine.rounds.identical import twin_of_control
from augmine.rounds.measure import measure_round
from augmine.rounds.plans import load_run_index, mining_settings, selected_plan, selection_method
from augmine.rounds.runner import (checked_epochs, round_lr_range, round_progress,
                                   round_schedule, round_steps, train_arm)
from augmine.rounds.seeds import checked_seeds, seed_branch, seeds_effect, train_seeds
from augmine.rounds.state import RoundState

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
    :mod:`augmine.rounds.identical`). ``run_dir``: a path, RunDir or
    :class:`~augmine.rounds.state.RoundState`.
    With ``pairs`` among the modes every mode's effect also has the partner classes' row.
    ``echo`` gets a header before each arm trains (default: the log). ``seeds`` N > 1
    trains every arm again at seeds 2..N (``<mode>-seed-s`` branches; effects over seeds
    and images: :mod:`augmine.rounds.seeds`). Running it again resumes unfinished branches
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
    from augmine.core.shipped import resolve_recipe

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
        from augmine.rounds.gentle import gentle_recipe

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
