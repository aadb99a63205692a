"""Training seeds of a round and of ``mine compare`` (``--seeds N``): where each seed's arm
trains and the effect over seeds and measurement images together.

Seed 1 is what a round trains without ``--seeds`` (the run's config seed, the usual folders:
the run itself and ``branches/round-N/control``, or ``branches/compare-step-S/<mode>``);
seed s >= 2 trains every arm again from the same start with seed ``config seed + (s - 1) *
SEED_STRIDE`` (sampling, augmentation, Keras' initialisation of anything new) in a branch
``<name>-seed-s`` beside it (:func:`seed_branch`). Each branch resumes like a run, so a killed
``--seeds 3`` round goes on at the seed (and epoch) it was in.

:func:`seeds_effect` is :func:`~augmine.rounds.measure.measure_round` of seed 1 with every
"net of control" cell replaced by :func:`~augmine.analysis.bootstrap.seed_effect` over all
the seeds (a two-stage bootstrap: seeds, then images), each cell keeping its ``per_seed``
values (the seed-to-seed spread).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from augmine.analysis.bootstrap import seed_effect
from augmine.analysis.effects import (effect_note, effect_warning, round_metric_names,
                                      round_metrics)
from augmine.analysis.splits import selection_split
from augmine.core.errors import AugmineError
from augmine.rounds.measure import BOOTSTRAP_REPS, measure_round

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
