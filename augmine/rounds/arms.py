"""The arms of a mining round: how each mode spends the round's epochs, and its control.

A mode is one entry of :data:`MODE_TABLE` (an :class:`Arm`): the extra samples it adds
(``extra``: the plan -> an :class:`~augmine.analysis.plans.OversamplingPlan`, or None for plain
epochs), the rest of its :func:`~augmine.train.phases.train_extra_epochs` arguments (``inputs``),
its description, whether ``mine round --mode`` offers it (every mode is in ``mine
compare``) and whether its round measures the chosen classes' confusion partners. The
control is :data:`CONTROL`: plain sampling.

The budget (:func:`arm_inputs` with ``length``): an arm's epoch is stretched evenly to as
many batches as a reference epoch, every class's factor times the same r >= 1, so the
emphasis stays and every arm takes the same optimizer steps. A round's control matches
the round's mode; ``mine compare`` stretches every arm to the longest epoch of any mode
(:func:`compare_length`), so a mode's numbers do not depend on which others were compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from augmine.core.errors import AugmineError
from augmine.analysis.plans import OversamplingPlan, pairs_plan

# (plan, the arm's sampling plan or None, index, options) -> train_extra_epochs keywords
Inputs = Callable[[OversamplingPlan, "OversamplingPlan | None", object, dict], dict]


@dataclass(frozen=True)
class Arm:
    """One way to spend a round's epochs (see the module doc)."""

    inputs: Inputs
    describe: Callable[[OversamplingPlan], str]
    extra: Callable[[OversamplingPlan], OversamplingPlan] | None = None
    in_round: bool = True
    partners: bool = False


def _top(plan: OversamplingPlan) -> float:
    return float(plan.factors[plan.weak].max(initial=1.0))


def _sampling(plan, sampling, index, options) -> dict:
    return {"plan": sampling}


def _class_weight(plan, sampling, index, options) -> dict:
    return {"plan": sampling, "class_weight": plan.class_weight(index.class_counts("train"))}


def _recipe(plan, sampling, index, options) -> dict:
    recipe = options.get("strong_recipe")
    if not recipe:
        raise AugmineError("mode recipe: give the stronger recipe (--recipe, or mining.recipe "
                           "in the training config)")
    base = sampling.factors if sampling is not None else np.ones(plan.num_classes)
    return {"plan": OversamplingPlan(base, plan.weak, plan.class_ids, plan.class_names,
                                     str(recipe), {"recipe_mode": True})}


def _gentle(plan, sampling, index, options) -> dict:
    recipe = options.get("gentle_recipe")
    if recipe is None:
        raise AugmineError("mode gentle: no gentle recipe was made for this round; run it "
                           "through `augmine mine round --mode gentle` or `mine compare`")
    return {"plan": sampling, "recipe": recipe}


def _distill(plan, sampling, index, options) -> dict:
    teacher = options.get("teacher")
    if not teacher:
        raise AugmineError("mode distill: no start model to distil from; run it through "
                           "`augmine mine round --mode distill` or `mine compare`")
    return {"plan": sampling, "teacher": teacher}


def _head(plan, sampling, index, options) -> dict:
    if not options.get("head_layers"):
        raise AugmineError("mode head: no head_layers given; pass the options of "
                           "model_options(config.mining, ...) (mining.head_layers)")
    return {"plan": sampling, "head_layers": int(options["head_layers"])}


def model_options(mining, start_checkpoint) -> dict:
    """The options of the modes that change how the model trains (see :func:`arm_inputs`)
    from a config's ``mining`` section: distill's ``teacher`` (``start_checkpoint``, the
    arm's start, at ``distill_temperature`` and ``distill_weight``) and head's
    ``head_layers``."""
    return {"teacher": {"checkpoint": str(start_checkpoint),
                        "temperature": float(mining.distill_temperature),
                        "weight": float(mining.distill_weight)},
            "head_layers": int(mining.head_layers)}


def with_partner_emphasis(plan: OversamplingPlan, asked: bool) -> OversamplingPlan:
    """``plan`` recording (``policy.emphasize_partners``) that distill repeats the chosen
    classes' confusion partners too (``--partners`` given); once recorded it stays."""
    if asked:
        plan.policy["emphasize_partners"] = True
    return plan


def _distill_sampling(plan: OversamplingPlan) -> OversamplingPlan:
    """oversample's sampling, or pairs' when the plan says partners are emphasized too."""
    return pairs_plan(plan) if (plan.policy or {}).get("emphasize_partners") else _copy(plan)


def _describe_distill(plan: OversamplingPlan) -> str:
    with_partners = " with their confusion partners" if \
        (plan.policy or {}).get("emphasize_partners") else ""
    return (f"distill: oversample x{_top(plan):.1f}{with_partners}, every class kept near "
            "the start model's soft targets")


def _describe_head(plan: OversamplingPlan) -> str:
    return (f"head: only the head trains (mining.head_layers; the features frozen), "
            f"oversample x{_top(plan):.1f} with the confusion partners")


def _copy(plan: OversamplingPlan) -> OversamplingPlan:
    return OversamplingPlan(plan.factors, plan.weak, plan.class_ids, plan.class_names,
                            plan.recipe, dict(plan.policy))


def _describe_oversample(plan: OversamplingPlan) -> str:
    what = f"oversample x{_top(plan):.1f}" if _top(plan) > 1 else \
        "plain epochs (factor 1: no extra samples)"
    return what + (f", recipe {Path(plan.recipe).name} for them" if plan.recipe else "")


def _describe_pairs(plan: OversamplingPlan) -> str:
    n = (plan.policy or {}).get("partners_per_class", 1)
    return (f"pairs: oversample x{_top(plan):.1f} with {n} confusion partner"
            f"{'s' if n != 1 else ''} each")


MODE_TABLE: dict[str, Arm] = {
    "oversample": Arm(_sampling, _describe_oversample, extra=_copy),
    "class-weight": Arm(_class_weight, lambda p: f"class weights x{_top(p):.1f}"),
    "recipe": Arm(_recipe, lambda p: "a stronger recipe for them", in_round=False),
    "pairs": Arm(_sampling, _describe_pairs, extra=pairs_plan, partners=True),
    "gentle": Arm(_gentle, lambda p: "gentle: milder augmentation for them (affinity-"
                  "tailored, plain sampling)"),
    "distill": Arm(_distill, _describe_distill, extra=_distill_sampling, partners=True),
    "head": Arm(_head, _describe_head, extra=pairs_plan, partners=True),
}
CONTROL = Arm(_sampling, lambda p: "plain sampling", in_round=False)
MODES = tuple(m for m, a in MODE_TABLE.items() if a.in_round)      # mine round --mode
COMPARE_MODES = tuple(MODE_TABLE)                                  # mine compare --mode


def mode_phrases(modes=COMPARE_MODES, factor: float = 3.0) -> str:
    """Each mode with its description (on an example plan: one chosen class at ``factor``,
    one confusion partner), for ``--mode`` help: ``oversample = oversample x3.0; ...``."""
    example = OversamplingPlan(np.array([factor, 1.0]), [0], ["a", "b"], ["a", "b"], None,
                               {"partners_per_class": 1})
    return "; ".join(f"{m} = {MODE_TABLE[m].describe(example).removeprefix(m + ': ')}"
                     for m in modes)


def arm(mode: str, modes=COMPARE_MODES) -> Arm:
    """The :class:`Arm` of ``mode`` (or ``"control"``); one-line error naming ``modes``."""
    if mode == "control":
        return CONTROL
    if mode not in modes:
        raise AugmineError(f"mode {mode!r}: choose one of {', '.join(modes)}")
    return MODE_TABLE[mode]


def describe_arm(plan: OversamplingPlan, mode: str) -> str:
    """What a round does, in words ("oversample x3.0", never for a factor-1 plan)."""
    return arm(mode).describe(plan)


def arm_length(mode: str, plan: OversamplingPlan, index) -> int:
    """Training images in one epoch of ``mode``'s own sampling (its extra samples, or plain)."""
    from augmine.feed.sampling import epoch_length

    spec = arm(mode)
    return epoch_length(index, spec.extra(plan) if spec.extra else None)


def compare_length(plan: OversamplingPlan, index) -> int:
    """The epoch every arm of ``mine compare`` is stretched to: the longest of any mode."""
    return max(arm_length(m, plan, index) for m in MODE_TABLE)


def stretched(base: OversamplingPlan | None, plan: OversamplingPlan, index, batch_size: int,
              length: int) -> OversamplingPlan | None:
    """``base``'s sampling (None: plain) with every factor times one r >= 1, so an epoch has
    as many batches of ``batch_size`` as ``length`` images make; ``base`` itself when it
    already has as many (or more). ``plan`` gives the classes of a plain ``base``."""
    from augmine.feed.sampling import epoch_length
    from augmine.feed.shards import steps_per_epoch

    target = steps_per_epoch(length, batch_size)
    n0 = epoch_length(index, base)
    if steps_per_epoch(n0, batch_size) >= target:
        return base
    factors = np.ones(plan.num_classes) if base is None else base.factors

    def make(r: float) -> OversamplingPlan:
        if base is None:
            return OversamplingPlan(factors * r, [], plan.class_ids, plan.class_names,
                                    policy={"control": True, "factor": float(r)})
        return OversamplingPlan(factors * r, base.weak, base.class_ids, base.class_names,
                                base.recipe, {**base.policy, "stretched": float(r)})

    def batches(r: float) -> int:
        return steps_per_epoch(epoch_length(index, make(r)), batch_size)

    r = length / n0                     # the usual hit; else bisect (batches grow with r)
    if batches(r) == target:
        return make(r)
    lo, hi = 1.0, 2.0 * r
    for _ in range(60):
        mid = (lo + hi) / 2
        got = batches(mid)
        if got == target:
            return make(mid)
        lo, hi = (mid, hi) if got < target else (lo, mid)
    return make(hi)                     # the fewest batches at or above the target


def arm_inputs(mode: str, plan: OversamplingPlan, index, batch_size: int,
               length: int | None = None, **options) -> dict:
    """Keyword arguments of :func:`~augmine.train.phases.train_extra_epochs` for one arm.

    ``mode``: a :data:`MODE_TABLE` key or ``"control"``; ``length``: stretch the arm's
    epoch to as many batches as ``length`` images (:func:`stretched`; None: its own
    epoch); ``options``: what a mode needs beyond the plan (``strong_recipe`` for recipe,
    ``gentle_recipe`` for gentle: :func:`augmine.rounds.gentle.gentle_recipe`; ``teacher``
    for distill and ``head_layers`` for head: :func:`model_options`).
    """
    spec = arm(mode)
    own = spec.extra(plan) if spec.extra else None
    if length is not None:
        own = stretched(own, plan, index, batch_size, length)
    return spec.inputs(plan, own, index, options)


def format_pairs(plan: OversamplingPlan) -> list[str]:
    """One line per chosen class and its confusion partners (counts on the selection
    images), from the plan's recorded ``partners``."""
    lines = []
    for row in (plan.policy or {}).get("partners") or []:
        if row["partners"]:
            lines.append(f"  {row['class']} <-> " + ", ".join(
                f"{p} ({n} confusions)" for p, n in zip(row["partners"], row["confusions"])))
        else:
            lines.append(f"  {row['class']}: no confusions on the selection images "
                         "(oversampled alone)")
    return lines
