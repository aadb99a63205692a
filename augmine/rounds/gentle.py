"""The ``gentle`` round mode: the chosen classes train under milder augmentation.

Augmentation's effect is class-dependent (Balestriero, Bottou & LeCun, NeurIPS 2022), and
giving the classes it hurts milder augmentation recovers them (Kirichenko et al., NeurIPS
2023). A gentle round keeps the sampling plain (the control's budget) and changes only
the recipe of the chosen classes, as ``classes:`` overrides of the last phase's recipe
(at that phase's strength):

- the affinity of that recipe on the run's model (:func:`augmine.train.affinity.measure_affinity`,
  measured when missing, reused when saved) is read **on the selection images only** (the
  val half that chose the classes; never the half that measures the round), and the
  tailor rule (:func:`augmine.analysis.affinity_stats.tailor_overrides`) switches off, for a chosen
  class, each transform that costs it clearly more than the other classes, and halves its
  strength when the whole recipe does;
- a chosen class the rule leaves alone gets the whole recipe at half strength
  (:data:`augmine.analysis.affinity_stats.TAILORED_STRENGTH`): the round is about milder
  augmentation for the weak classes, measured or not.

Runs that choose classes on a held-out slice of train (``selection: holdout``) measure on
all of val, so the affinity (a val measurement) is not used there: every chosen class
gets the half strength. The recipe is written into the run folder before the round trains
(:meth:`RunDir.gentle_recipe_path`) and read back when an interrupted round resumes.
"""

from __future__ import annotations

import numpy as np

from augmine.core import atomic
from augmine.analysis.affinity_stats import TAILORED_STRENGTH, per_image_drops, tailor_overrides
from augmine.core.errors import AugmineError
from augmine.analysis.plans import OversamplingPlan
from augmine.analysis.splits import selection_split
from augmine.augment.recipes import dump_recipe, load_recipe, parse_recipe
from augmine.augment.strength import scale_recipe
from augmine.runs.rundir import RunDir


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
    round could differ from its control at all (:mod:`augmine.rounds.identical`)."""
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
