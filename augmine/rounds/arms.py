"""The arms of a mining round: how each mode spends the round's epochs, and its control; the
``gentle`` mode's recipe; whether a mode would train exactly what its control trains.

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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from augmine.analysis.plans import OversamplingPlan, pairs_plan, selection_split
from augmine.augment.compose import class_overrides, recipe_for_class, scale_recipe
from augmine.augment.recipes import as_recipe, dump_recipe, load_recipe, parse_recipe
from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir
from augmine.train.affinity import per_image_drops, tailor_overrides, TAILORED_STRENGTH


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
    from augmine.feed.sampling import steps_per_epoch

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
    ``gentle_recipe`` for gentle: :func:`augmine.rounds.arms.gentle_recipe`; ``teacher``
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


# =========================================================================== gentle
# The ``gentle`` round mode: the chosen classes train under milder augmentation.
#
# Augmentation's effect is class-dependent (Balestriero, Bottou & LeCun, NeurIPS 2022), and
# giving the classes it hurts milder augmentation recovers them (Kirichenko et al., NeurIPS
# 2023). A gentle round keeps the sampling plain (the control's budget) and changes only
# the recipe of the chosen classes, as ``classes:`` overrides of the last phase's recipe
# (at that phase's strength):
#
# - the affinity of that recipe on the run's model (:func:`augmine.train.affinity.measure_affinity`,
# measured when missing, reused when saved) is read **on the selection images only** (the
# val half that chose the classes; never the half that measures the round), and the
# tailor rule (:func:`augmine.train.affinity.tailor_overrides`) switches off, for a chosen
# class, each transform that costs it clearly more than the other classes, and halves its
# strength when the whole recipe does;
# - a chosen class the rule leaves alone gets the whole recipe at half strength
# (:data:`augmine.train.affinity.TAILORED_STRENGTH`): the round is about milder
# augmentation for the weak classes, measured or not.
#
# Runs that choose classes on a held-out slice of train (``selection: holdout``) measure on
# all of val, so the affinity (a val measurement) is not used there: every chosen class
# gets the half strength. The recipe is written into the run folder before the round trains
# (:meth:`RunDir.gentle_recipe_path`) and read back when an interrupted round resumes.

def gentle_overrides(plan: OversamplingPlan, index, affinity: dict | None,
                     selection_rows, seed: int = 0) -> dict[str, dict]:
    """``{class id: override}`` for the plan's chosen classes (see the module doc).

    ``affinity``: a :func:`~augmine.train.affinity.measure_affinity` result on ``index``'s val
    images, or None (no affinity: half strength for every chosen class);
    ``selection_rows``: the val indices (into ``index.val``) the classes were chosen on.
    """
    chosen = [index.class_ids[c] for c in plan.weak]
    tailored: dict[str, dict] = {}
    if affinity is not None:
        rows = {str(p): i for i, p in enumerate(affinity["val_paths"])}
        take = [rows.get(str(index.val.paths[i])) for i in selection_rows]
        if None in take or list(affinity["class_ids"]) != list(index.class_ids):
            raise AugmineError("gentle: the saved affinity was measured on other val images; "
                               "measure it again with `augmine recipe affinity RECIPE --run "
                               "RUN --force` (RECIPE: the last phase's recipe)")
        correct = np.asarray(affinity["correct"])[:, take]
        labels = np.asarray(affinity["labels"])[take]
        drops = per_image_drops(correct, labels, len(index.class_ids))
        tailored = tailor_overrides(drops, index.class_ids, affinity["columns"], seed=seed)
    out = {}
    for cid in chosen:
        if cid in tailored:
            out[cid] = {**tailored[cid], "why": "gentle round, on the selection images: "
                        + tailored[cid]["why"]}
        else:
            out[cid] = {"strength": TAILORED_STRENGTH,
                        "why": ("gentle round: a chosen weak class; " +
                                ("no transform costs it measurably more than the other "
                                 "classes on the selection images" if affinity is not None
                                 else "no affinity on a holdout-selected run")
                                + f": the whole recipe at strength {TAILORED_STRENGTH:g}")}
    return out


def gentle_recipe(run_dir, index, plan: OversamplingPlan, selection: str, stage: str,
                  resume: bool = False, progress: bool = True):
    """The gentle arm's recipe (a :class:`~augmine.augment.recipes.Recipe`): the last phase's recipe
    with the chosen classes' overrides, at the phase's strength. Written to
    :meth:`RunDir.gentle_recipe_path` (``stage``: the round or compare group); with
    ``resume`` a recipe written there before is used as is."""
    run = RunDir.of(run_dir)
    path = run.gentle_recipe_path(stage)
    last = run.config.phases[-1]
    if not (resume and path.is_file()):
        base = run.config.recipe(last.recipe)
        affinity = None
        if selection == "val-half" and base.transforms:
            from augmine.train.affinity import measure_affinity

            affinity = measure_affinity(run, base, progress=progress)
        rows = selection_split(index.val.labels, run.config.seed)[0]
        overrides = gentle_overrides(plan, index, affinity, rows, seed=run.config.seed)
        data = _gentle_data(base, overrides, stage)
        parse_recipe(data, str(path))                 # what is written must load
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, dump_recipe(data))
    return _at_phase_strength(load_recipe(path), last)


def untailored_gentle_recipe(run_dir, index, plan: OversamplingPlan):
    """The gentle recipe before any affinity is measured (every chosen class at
    ``TAILORED_STRENGTH``), in memory: what decides, before training, whether a gentle
    round could differ from its control at all (:mod:`augmine.rounds.arms`)."""
    run = RunDir.of(run_dir)
    last = run.config.phases[-1]
    base = run.config.recipe(last.recipe)
    data = _gentle_data(base, gentle_overrides(plan, index, None, [], run.config.seed), "plan")
    return _at_phase_strength(parse_recipe(data, f"{base.name}-gentle"), last)


def _gentle_data(base, overrides: dict, stage: str) -> dict:
    return {"name": f"{base.name}-gentle-{stage}",
            "description": (f"{base.name} with milder augmentation for the {len(overrides)} "
                            f"classes chosen for {stage} (augmine's gentle mode)"),
            "transforms": base.transforms, "classes": overrides}


def _at_phase_strength(recipe, phase):
    if phase.strength is not None and phase.strength != 1:
        return scale_recipe(recipe, phase.strength)
    return recipe


# =========================================================================== identical
# Whether a round mode would train exactly what its control trains, decided from the plan
# before anything trains.
#
# An arm's training is its sampling (the plan's factors, up to the one stretch every arm
# gets), its class weights and the augmentation each class sees (the arm's recipe, or the
# last phase's at its strength, with class overrides and the plan's recipe for the chosen
# classes). An arm that passes the trainer anything else (:data:`COMPARED`) is taken to
# differ. When all three match the control's, the round would measure a zero that says
# nothing about the mode (for example ``gentle`` on a run whose last phase has no
# augmentation: milder than nothing is nothing; a plan whose chosen classes get factor 1);
# ``mine round`` refuses such a mode and ``mine compare`` skips it, each with the reason.

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
    untailored recipe (:func:`~augmine.rounds.arms.untailored_gentle_recipe`): if half
    strength changes nothing for the chosen classes, no tailoring can; ``strong_recipe``:
    the recipe mode's."""
    run = RunDir.of(run_dir)
    options = {"strong_recipe": strong_recipe}
    if mode == "gentle":

        options["gentle_recipe"] = untailored_gentle_recipe(run, index, plan)
    try:
        same = same_as_control(mode, plan, index, run.config.batch_size,
                               last_phase_recipe(run), length, **options)
    except AugmineError:
        return None                      # the mode lacks an input: its own error says which
    return refusal_reason(mode, plan) if same else None
