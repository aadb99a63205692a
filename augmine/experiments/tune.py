"""Strength chosen for the budget: ``augmine recipe tune``.

A recipe's best strength depends on the training budget (docs/recipes.md, "Strength for
the budget", has the measurements on 20 real classes). Tuning
trains one run per strength with :func:`augmine.experiments.compare.run_comparison` (same model, seed,
data and budget; an ordinary comparison folder, resumable), then:

- **chooses** the strength with the best final top-1 on the *selection* half of val (a
  seeded, stratified half: :func:`augmine.analysis.plans.selection_split`); ties go to the milder
  strength;
- **measures** it on the other half, which did not choose it: its top-1 and the paired
  difference against every other strength with 95% bootstrap intervals
  (:func:`augmine.analysis.effects.mean_intervals`), so a winner by noise shows an interval
  across zero;
- **writes** the config that was measured: the base config with every phase on the recipe
  at the chosen strength (what the comparison trained, :func:`augmine.experiments.compare.arm_config`).

With ``seeds`` > 1 every strength trains once per seed; the choice is made on the mean
over seeds and measured with the two-stage bootstrap over seeds and images.

Cost: one training run of the config per strength and seed (on a 2-core CPU a cpu-20
run takes 5-8 minutes, so the default five strengths take half an hour a seed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from augmine.core import atomic
from augmine.experiments.compare import Arm, arm_config, run_comparison, split_strength
from augmine.experiments.compare_results import ComparisonDir, arm_intervals
from augmine.core.errors import AugmineError
from augmine.analysis.metrics import top1_hits
from augmine.analysis.plans import selection_split

DEFAULT_STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def choose_strength(y_true, hits, strengths: Sequence[float], seed: int = 0,
                    samples: int = 2000) -> dict:
    """Pick a strength on one half of val and measure it on the other (pure numpy).

    ``y_true`` (N,) int val labels; ``hits`` (A, N) 1.0 where arm a's final prediction is
    right, or (A, S, N) for S training seeds (chosen on the mean over seeds; measured with
    the two-stage bootstrap over seeds and images); ``strengths`` (A,). Returns ``{"chosen": index, "strength", "selection": {"images",
    "top1" (A,)}, "measurement": {"images", "top1" (A,), "low" (A,), "high" (A,), "diff"
    (A,), "diff_low" (A,), "diff_high" (A,)}}``, the differences being arm - chosen.
    """
    hits = np.asarray(hits, dtype=np.float64)
    hits = hits[:, None] if hits.ndim == 2 else hits
    strengths = [float(s) for s in strengths]
    if hits.ndim != 3 or hits.shape[0] != len(strengths) or len(strengths) < 2:
        raise AugmineError(f"tune: need predictions of at least 2 strengths, got {hits.shape}")
    sel, meas = selection_split(y_true, seed)
    sel_top1 = hits[:, :, sel].mean(axis=(1, 2))
    order = sorted(range(len(strengths)), key=lambda a: (-sel_top1[a], strengths[a]))
    chosen = order[0]
    arms = [chosen] + [a for a in range(len(strengths)) if a != chosen]
    boot = arm_intervals(hits[arms][:, :, meas], samples, seed)
    back = np.argsort(arms)                 # boot rows back in strength order
    return {"chosen": int(chosen), "strength": strengths[chosen],
            "selection": {"images": int(len(sel)), "top1": sel_top1.tolist()},
            "measurement": {"images": int(len(meas)), "seeds": int(hits.shape[1]),
                            **{k: np.asarray(v)[back].tolist() for k, v in boot.items()
                               if k in ("low", "high", "diff", "diff_low", "diff_high",
                                        "per_seed")},
                            "top1": np.asarray(boot["mean"])[back].tolist()}}


def tune_strength(recipe: str, data, config, strengths: Sequence[float] = DEFAULT_STRENGTHS,
                  folder=None, write: str | os.PathLike | None = None,
                  epochs: int | None = None, size: int | None = None, progress: bool = True,
                  echo: Callable[[str], None] | None = None, seed: int = 0,
                  seeds: int = 1, jobs: int = 1, dry_run: bool = False) -> dict | None:
    """Train ``recipe`` at each of ``strengths`` under ``config`` on ``data`` (a comparison
    folder, default ``runs/tune-<recipe>``), choose and measure the strength
    (:func:`choose_strength`) and, with ``write``, save the config that trained it.

    Returns ``{"recipe", "strengths", "folder", "choice" (see choose_strength), "config"
    (path written or None)}``. ``seeds``, ``jobs``, ``dry_run``: as
    :func:`~augmine.experiments.compare.run_comparison` (a dry run returns None).
    """
    from augmine.runs.config import load_config
    from augmine.augment.recipes import load_recipe
    from augmine.core.runtime import resolve_config

    name, fixed = split_strength(recipe)
    if fixed is not None:
        raise AugmineError(f"tune {recipe!r}: name the recipe without @strength; "
                           "--strength lists the strengths to try")
    loaded = load_recipe(name)
    if not loaded.transforms:
        raise AugmineError(f"{loaded.path}: has no transforms, so its strength changes "
                           "nothing; tune a recipe with transforms")
    strengths = sorted({float(s) for s in strengths})
    if len(strengths) < 2:
        raise AugmineError("--strength: give at least two strengths to choose from, "
                           "e.g. 0,0.5,1")
    stem = loaded.path.stem if loaded.path else loaded.name
    folder = ComparisonDir(folder if folder is not None else Path("runs") / f"tune-{stem}")
    specs = [f"{loaded.path}@{s:g}" for s in strengths]
    results = run_comparison(specs, data, config, folder.path, epochs, size,
                             progress=progress, echo=echo, seeds=seeds, jobs=jobs,
                             dry_run=dry_run)
    if results is None:
        return None
    y = None
    rows = []
    for arm in results["arms"]:
        rows.append([])
        for name in arm["runs"]:
            with np.load(folder.predictions_path(name)) as got:
                y = got["y_true"]
                rows[-1].append(top1_hits(y, got["final"]))
    hits = np.array(rows)                                     # (strengths, seeds, images)
    choice = choose_strength(y, hits, strengths, seed=seed)
    written = None
    if write is not None:
        base = load_config(resolve_config(config))
        best = Arm(f"{stem}-s{choice['strength']:g}", str(loaded.path), choice["strength"])
        tuned = load_config(arm_config(base, best, epochs, size))
        written = atomic.write_text(write, tuned.to_yaml())
    return {"recipe": str(loaded.path), "strengths": strengths, "folder": str(folder.path),
            "choice": choice, "config": None if written is None else str(written),
            "comparison": results}


def format_tune(result: dict) -> list[str]:
    """Lines for people: per strength its top-1 on the selection half and, on the other
    half, its top-1 and its difference against the chosen strength (95% intervals)."""
    c = result["choice"]
    m, sel = c["measurement"], c["selection"]
    seeds = int(m.get("seeds", 1))
    how = "95% paired bootstrap intervals" if seeds == 1 else \
        f"{seeds} training seeds each, 95% two-stage bootstrap intervals over seeds and images"
    lines = [f"strength of {Path(result['recipe']).stem}: chosen on one half of val "
             f"({sel['images']} images{', mean over seeds' if seeds > 1 else ''}), measured "
             f"on the other ({m['images']} images; {how})",
             f"{'strength':>8}  {'chosen on':>9}  {'measured top-1 %':>22}  "
             f"{'vs chosen, points':>22}"]
    for a, s in enumerate(result["strengths"]):
        mark = "  <- chosen" if a == c["chosen"] else ""
        diff = "" if a == c["chosen"] else \
            f"{100 * m['diff'][a]:+.1f} [{100 * m['diff_low'][a]:+.1f}, " \
            f"{100 * m['diff_high'][a]:+.1f}]"
        spread = ""
        if seeds > 1:
            per_seed = 100 * np.asarray(m["per_seed"][a])
            spread = f"  seeds {per_seed.min():.1f}-{per_seed.max():.1f}"
        lines.append(f"{s:>8g}  {100 * sel['top1'][a]:>8.1f}%  "
                     f"{100 * m['top1'][a]:>6.1f} [{100 * m['low'][a]:.1f}, "
                     f"{100 * m['high'][a]:.1f}]  {diff:>22}{spread}{mark}")
    others = [a for a in range(len(result["strengths"])) if a != c["chosen"]]
    clear = [a for a in others if m["diff_high"][a] < 0]
    if len(clear) == len(others):
        lines.append(f"strength {c['strength']:g} beats every other strength on the "
                     "measurement half (each interval below zero)")
    else:
        ties = ", ".join(f"{result['strengths'][a]:g}" for a in others if a not in clear)
        lines.append(f"strength {c['strength']:g} is best on the selection half; on the "
                     f"measurement half it is not measurably better than {ties}")
    if result.get("config"):
        lines.append(f"wrote {result['config']}: every phase on {Path(result['recipe']).name} "
                     f"at strength {c['strength']:g}, as trained here")
    return lines
