"""Whether a round mode would train exactly what its control trains, decided from the plan
before anything trains.

An arm's training is its sampling (the plan's factors, up to the one stretch every arm
gets), its class weights and the augmentation each class sees (the arm's recipe, or the
last phase's at its strength, with class overrides and the plan's recipe for the chosen
classes). An arm that passes the trainer anything else (:data:`COMPARED`) is taken to
differ. When all three match the control's, the round would measure a zero that says
nothing about the mode (for example ``gentle`` on a run whose last phase has no
augmentation: milder than nothing is nothing; a plan whose chosen classes get factor 1);
``mine round`` refuses such a mode and ``mine compare`` skips it, each with the reason.
"""

from __future__ import annotations

import json

import numpy as np

from augmine.analysis.plans import OversamplingPlan
from augmine.augment.overrides import class_overrides, recipe_for_class
from augmine.augment.recipes import as_recipe
from augmine.augment.strength import scale_recipe
from augmine.core.errors import AugmineError
from augmine.rounds.arms import arm, arm_inputs, arm_length
from augmine.runs.rundir import RunDir


# the train_extra_epochs inputs compared; an arm passing any other one differs from the control
COMPARED = {"plan", "class_weight", "recipe"}


def _applied(entries: list[dict]) -> list[dict]:
    """``entries`` as they act on images: ``why`` dropped, entries never applied (p = 0)
    and containers left empty dropped."""
    out = []
    for entry in entries:
        if float(entry.get("p", 1.0)) == 0.0:
            continue
        entry = {k: v for k, v in entry.items() if k != "why"}
        if "transforms" in entry:
            entry["transforms"] = _applied(entry["transforms"])
            if not entry["transforms"]:
                continue
        out.append(entry)
    return out


def _key(recipe) -> str:
    """A recipe's augmentation as one comparable string (scaled to its strength)."""
    recipe = as_recipe(recipe)
    scaled = scale_recipe(recipe.origin or recipe, recipe.strength)
    return json.dumps(_applied(scaled.transforms), sort_keys=True, default=str)


def class_augmentation(recipe, index, plan: OversamplingPlan | None = None) -> list[str]:
    """(C,) what each class of ``index`` is augmented with under ``recipe`` (its class
    overrides applied) and ``plan`` (its ``recipe`` covers the plan's chosen classes), as
    comparable strings."""
    recipe = as_recipe(recipe)
    overrides = class_overrides(recipe, index.class_ids, index.class_names)
    base = _key(recipe)
    out = [_key(recipe_for_class(recipe, overrides[c])) if c in overrides else base
           for c in range(index.num_classes)]
    if plan is not None and plan.recipe:
        strong = _key(plan.recipe)
        for c in plan.weak:
            out[c] = strong
    return out


def _shape(plan: OversamplingPlan | None, num_classes: int) -> np.ndarray:
    factors = np.ones(num_classes) if plan is None else np.asarray(plan.factors, np.float64)
    return factors / factors.mean()


def _weighted(class_weight: dict | None) -> bool:
    return bool(class_weight) and not np.allclose(list(class_weight.values()), 1.0)


def same_as_control(mode: str, plan: OversamplingPlan, index, batch_size: int,
                    default_recipe, length: int | None = None, **options) -> bool:
    """Whether ``mode`` (with ``options``, see :func:`~augmine.rounds.arms.arm_inputs`)
    would train exactly what the control trains: the same sampling, no class weights and
    the same augmentation for every class. ``default_recipe``: what an arm without its own
    recipe trains with (the last phase's, at its strength); ``length``: the epoch every
    arm is stretched to (default: the mode's own, as in a round)."""
    length = arm_length(mode, plan, index) if length is None else length
    mine = arm_inputs(mode, plan, index, batch_size, length, **options)
    ctrl = arm_inputs("control", plan, index, batch_size, length)
    if set(mine) - COMPARED:             # the mode changes more than data and weights
        return False
    if _weighted(mine.get("class_weight")) or _weighted(ctrl.get("class_weight")):
        return False
    n = index.num_classes
    if not np.allclose(_shape(mine.get("plan"), n), _shape(ctrl.get("plan"), n)):
        return False
    return (class_augmentation(mine.get("recipe") or default_recipe, index, mine.get("plan"))
            == class_augmentation(ctrl.get("recipe") or default_recipe, index, ctrl.get("plan")))


def refusal_reason(mode: str, plan: OversamplingPlan) -> str:
    """Why a mode that trains like its control is not run (one line, no trailing period)."""
    return (f"mode {mode} ({arm(mode).describe(plan)}) would train exactly what the control "
            "trains here (the same sampling and the same augmentation for every class), so "
            "its effect would be a measured zero, not a result")


def last_phase_recipe(run_dir):
    """What an arm without a recipe of its own trains with: the last phase's recipe at the
    phase's strength."""
    cfg = RunDir.of(run_dir).config
    last = cfg.phases[-1]
    return scale_recipe(cfg.recipe(last.recipe), 1.0 if last.strength is None else last.strength)


def twin_of_control(run_dir, mode: str, plan: OversamplingPlan, index,
                    length: int | None = None, strong_recipe=None) -> str | None:
    """Why ``mode`` would train exactly what the control trains on the run in ``run_dir``
    (:func:`refusal_reason`), or None when it would not. ``gentle`` is judged on its
    untailored recipe (:func:`~augmine.rounds.gentle.untailored_gentle_recipe`): if half
    strength changes nothing for the chosen classes, no tailoring can; ``strong_recipe``:
    the recipe mode's."""
    run = RunDir.of(run_dir)
    options = {"strong_recipe": strong_recipe}
    if mode == "gentle":
        from augmine.rounds.gentle import untailored_gentle_recipe

        options["gentle_recipe"] = untailored_gentle_recipe(run, index, plan)
    try:
        same = same_as_control(mode, plan, index, run.config.batch_size,
                               last_phase_recipe(run), length, **options)
    except AugmineError:
        return None                      # the mode lacks an input: its own error says which
    return refusal_reason(mode, plan) if same else None
