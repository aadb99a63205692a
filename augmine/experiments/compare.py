"""Recipes compared on the data: the same model, seed and budget trained once per recipe
(or per strength), then one table with bootstrap intervals.

A comparison folder holds one ordinary run folder per arm (resumable with
:func:`augmine.train.phases.train_run`) and the comparison's own files::

    OUT/comparison.json            the arms and the derived config of each (what was asked)
    OUT/<arm>/                     the arm's run folder (config.yaml, history.csv, ...)
    OUT/<arm>-seed<S>/             the run of training seed S > 0 (`--seeds`; files below alike)
    OUT/logs/<run>.log             a `--jobs` child process's output
    OUT/timing/<arm>.json          training seconds and images per epoch (images/s)
    OUT/predictions/<arm>.npz      val labels and the final and best models' probabilities
    OUT/results.json               the table's numbers (what
                                   :func:`~augmine.experiments.compare_results.format_comparison`
                                   prints)

The folder (:class:`~augmine.experiments.compare_results.ComparisonDir`), the scores and the
table live in :mod:`augmine.experiments.compare_results`; training the arms lives here.

Running the same comparison again trains only what is missing (a finished arm is not
retrained, a killed one resumes) and prints the table again. Intervals are percentile
bootstrap intervals over val images (with ``seeds`` > 1, over training seeds and val
images: a two-stage bootstrap); differences against the first arm are paired (the same
resampled images, and the same seed, for both arms). Which runs ``--arm`` names, their
cost and ``--jobs`` live in :mod:`augmine.experiments.compare_jobs`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.experiments.compare_results import BOOTSTRAP_SAMPLES, ComparisonDir, score_comparison

log = logging.getLogger("augmine")


# --------------------------------------------------------------------------- arms and configs

@dataclass
class Arm:
    """One trained variant: ``name`` (folder name), ``recipe`` (path), ``strength`` (None = 1)."""

    name: str
    recipe: str
    strength: float | None = None


def parse_strengths(text: str | None) -> list[float] | None:
    """``"0,0.5,1"`` -> ``[0.0, 0.5, 1.0]``; None/empty -> None. One-line error otherwise."""
    if not text:
        return None
    out = []
    for part in str(text).split(","):
        try:
            value = float(part)
        except ValueError:
            raise AugmineError(f"--strength {text!r}: {part.strip()!r} is not a number; give "
                               "numbers >= 0 separated by commas, e.g. 0,0.5,1") from None
        if not np.isfinite(value) or value < 0:
            raise AugmineError(f"--strength {text!r}: {part.strip()} is not >= 0")
        out.append(value)
    return out


def split_strength(spec: str) -> tuple[str, float | None]:
    """``"tiny-imagenet-14@0.5"`` -> ``("tiny-imagenet-14", 0.5)``; no ``@`` -> ``(spec, None)``."""
    name, at, level = str(spec).rpartition("@")
    if not at:
        return str(spec), None
    return name, parse_strengths(level)[0]


def plan_arms(recipes: Sequence[str], strengths: Sequence[float] | None = None) -> list[Arm]:
    """The arms of a comparison: every recipe, at every strength when ``strengths`` is given
    (a recipe with no transforms once, since strength changes nothing there); a recipe
    written ``NAME@S`` is compared at strength S only (each recipe at its own best
    strength). The first arm is the reference the differences are taken against."""
    from augmine.augment.recipes import load_recipe

    if not recipes:
        raise AugmineError("name at least one recipe to compare, e.g. `none tiny-imagenet-14`")
    arms: list[Arm] = []
    for spec in recipes:
        name, own = split_strength(spec)
        recipe = load_recipe(name)
        stem = recipe.path.stem if recipe.path else recipe.name
        levels = [own] if own is not None else list(strengths or [None])
        if not recipe.transforms:
            levels = [None]
        for s in levels:
            arms.append(Arm(stem if s is None else f"{stem}-s{s:g}", str(recipe.path), s))
    names = [a.name for a in arms]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise AugmineError(f"{', '.join(twice)} named twice; compare each recipe (and "
                           "strength) once")
    return arms


def arm_config(base, arm: Arm, epochs: int | None = None, size: int | None = None) -> dict:
    """The training config of ``arm`` as a dict: ``base`` (a TrainConfig) with every
    phase's recipe replaced by the arm's (and its strength); with ``epochs`` and/or
    ``size`` one phase of ``size`` px (default: the last phase's) for ``epochs`` epochs
    (default: the config's total)."""
    raw = base.to_dict()
    raw.pop("data", None)
    if epochs is not None or size is not None:
        phases = [{"size": int(size or base.phases[-1].size),
                   "epochs": int(epochs or base.total_epochs)}]
    else:
        phases = [{"size": p.size, "epochs": p.epochs} for p in base.phases]
    for phase in phases:
        phase["recipe"] = arm.recipe
        if arm.strength is not None:
            phase["strength"] = arm.strength
    raw["phases"] = phases
    raw["name"] = f"{base.name}-{arm.name}"
    return raw


def default_out(arms: Sequence[Arm]) -> Path:
    """``runs/compare-<arm>-vs-<arm>...``: the default comparison folder."""
    return Path("runs") / ("compare-" + "-vs-".join(a.name for a in arms))


def _timing_callback(folder: ComparisonDir, arm: str, run_dir: Path, images_per_epoch: int,
                     on_first_epoch: Callable[[float], None] | None = None):
    """A Keras callback recording each epoch's training seconds (validation excluded) and
    images into the arm's timing file (keyed by the run's epoch number, so a resumed epoch
    overwrites); ``on_first_epoch(seconds)`` is called after its first epoch."""
    from augmine.runs.rundir import RunDir
    from augmine.core.runtime import import_keras

    keras = import_keras()
    run = RunDir(run_dir)

    class EpochTiming(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._train = time.perf_counter(), None

        def on_test_begin(self, logs=None):
            if getattr(self, "_train", 0) is None:
                self._train = time.perf_counter() - self._start

        def on_epoch_end(self, epoch, logs=None):
            nonlocal on_first_epoch
            took = self._train if self._train is not None else \
                time.perf_counter() - self._start
            rows = folder.read_timing(arm) or {}
            rows[str(len(run.read_history()))] = {"seconds": round(took, 4),
                                                  "images": int(images_per_epoch)}
            atomic.write_json(folder.timing_path(arm), rows)
            if on_first_epoch is not None:
                on_first_epoch(took)
                on_first_epoch = None

    return EpochTiming()


# --------------------------------------------------------------------------- running

def run_comparison(recipes: Sequence[str], data, config, out=None, epochs: int | None = None,
                   size: int | None = None, strengths: Sequence[float] | None = None,
                   progress: bool = True, echo: Callable[[str], None] | None = None,
                   samples: int = BOOTSTRAP_SAMPLES, seeds: int = 1,
                   measure_half: bool = False, arm: str | None = None, jobs: int = 1,
                   dry_run: bool = False, ray: str | None = None) -> dict | None:
    """Train one run per arm (see :func:`plan_arms`) and training seed from the same config
    on ``data``, then score them (:func:`score_comparison`).

    ``config``: training config path or built-in name; ``out``: comparison folder (default
    :func:`default_out`); ``epochs``/``size``: a one-phase budget instead of the config's
    phases (:func:`arm_config`); ``echo``: where progress lines go (default: the log).
    ``seeds``: runs per arm at the config's seed + 0..seeds-1 (model init, sampling and
    augmentation; seed 0 in ``OUT/<arm>/``, seed S in ``OUT/<arm>-seed<S>/``);
    ``measure_half``: score on the measurement half of val only; ``arm`` (``NAME[@SEED]``):
    train that run only and return None (the table needs every run); ``jobs``: runs at
    once, as child processes (:mod:`augmine.experiments.compare_jobs`); ``ray``: a Ray
    cluster's address, every missing run a Ray task there; ``dry_run``: print
    the runs, their estimated time and folder, write nothing, return None.
    Running it again with the same arguments trains only what is missing and re-scores;
    different arguments on the same folder are a one-line error. Returns the results dict
    (also written to ``results.json``).
    """
    from augmine.runs.config import load_config
    from augmine.data.dataset import load_index
    from augmine.core.runtime import resolve_config
    from augmine.experiments import compare_jobs as jobs_mod

    echo = echo or log.info
    if int(seeds) < 1 or int(jobs) < 1:
        raise AugmineError(f"--seeds {seeds} --jobs {jobs}: use 1 or more of each")
    arms = plan_arms(recipes, strengths)
    base = load_config(resolve_config(config))
    data = Path(data).expanduser().resolve()
    index = load_index(data)
    folder = ComparisonDir(out if out is not None else default_out(arms))
    configs = {a.name: arm_config(base, a, epochs, size) for a in arms}
    for raw in configs.values():
        load_config(raw)                          # every arm's config valid before training
    spec = {"data": str(data), "config": str(base.path or config), "epochs": epochs,
            "size": size, "arms": [{"name": a.name, "recipe": a.recipe,
                                    "strength": a.strength} for a in arms],
            "configs": configs}
    old = folder.read_spec()
    changed = [] if old is None else _spec_changes(old, spec)
    if changed:
        raise AugmineError(f"{folder.path} holds a comparison with other settings "
                           f"({', '.join(changed)} differ); run it with its own arguments "
                           "to resume or reprint it, or choose another --out")
    runs = [(a, s) for s in range(int(seeds)) for a in arms]     # every arm's seed 0 first
    if arm is not None:
        name, s = jobs_mod.parse_arm(arm, [a.name for a in arms], seeds)
        runs = [(a, s) for a in arms if a.name == name]
    names = [folder.run_name(a.name, s) for a, s in runs]
    todo = {folder.run_name(a.name, s): f"{a.name}@{s}" for a, s in runs
            if not _trained(folder, folder.run_name(a.name, s))}
    phases = configs[arms[0].name]["phases"]
    every = [folder.run_name(a.name, s) for s in range(int(seeds)) for a in arms]
    for line in jobs_mod.cost_lines(folder, names, todo, phases, jobs, measured=every):
        echo(line)
    if dry_run:
        return None
    if old is None:
        atomic.write_json(folder.spec_path, spec)
    commands = {n: jobs_mod.child_command(recipes, data, config, folder.path, epochs, size,
                                          strengths, seeds, spec_of_run)
                for n, spec_of_run in todo.items()}
    if ray and todo:
        jobs_mod.run_on_ray(commands, folder, ray, echo)
    elif int(jobs) > 1 and len(todo) > 1:
        jobs_mod.run_children(commands, folder, jobs, echo)
    else:
        announce = [not any(folder.read_timing(n) for n in every)]

        def first_epoch(seconds: float) -> None:
            if announce[0]:
                announce[0] = False
                each = jobs_mod.run_seconds(phases, seconds)
                echo(f"estimated time: about {jobs_mod.format_duration(each)} a run, "
                     f"{jobs_mod.format_duration(each * len(todo))} for the {len(todo)} "
                     f"run(s); from this first epoch ({seconds:.0f} s, start-up included), "
                     "scaled over the phases by pixels per image")

        for i, (a, s) in enumerate(runs, 1):
            _train_arm(folder, a, s, configs[a.name], data, index, progress, echo,
                       f"arm {i}/{len(runs)} {folder.run_name(a.name, s)}", first_epoch)
    if arm is not None:
        return None
    results = score_comparison(folder, samples=samples, seeds=seeds,
                               measure_half=measure_half)
    atomic.write_json(folder.results_path, results)
    return results


def _spec_changes(old: dict, spec: dict) -> list[str]:
    """What sets the recorded ``comparison.json`` (``old``) apart from ``spec``: its keys,
    with each arm's config compared resolved (:func:`augmine.runs.config.config_differences`),
    so a folder written before a default was recorded (or with a default written out)
    still resumes and reprints; ``configs.<arm>: <key>`` names what differs there."""
    from augmine.runs.config import config_differences, load_config

    changed = [k for k in spec if k != "configs" and old.get(k) != spec[k]]
    recorded = old.get("configs") or {}
    if set(recorded) != set(spec["configs"]):
        return changed + ["configs"]
    for name, raw in spec["configs"].items():
        try:
            diff = config_differences(load_config(recorded[name], check_recipes=False),
                                      load_config(raw, check_recipes=False))
        except AugmineError:
            diff = {"config": None}
        changed += [f"configs.{name}: {key}" for key in diff]
    return changed


def _trained(folder: ComparisonDir, name: str) -> bool:
    from augmine.runs.rundir import RunDir

    run = RunDir(folder.run_dir(name))
    return run.has_state() and run.read_state().status == "done" and \
        folder.predictions_path(name).is_file()


def _train_arm(folder: ComparisonDir, arm: Arm, seed: int, config: dict, data: Path, index,
               progress: bool, echo: Callable[[str], None], label: str,
               first_epoch: Callable[[float], None] | None = None) -> None:
    """Train (or resume) ``arm`` at the config's seed + ``seed`` and write its predictions."""
    from augmine.runs.rundir import RunDir
    from augmine.train.phases import train_run

    name = folder.run_name(arm.name, seed)
    run = RunDir(folder.run_dir(name))
    state = run.read_state() if run.has_state() else None
    if state is not None and state.status == "done":
        done = state.epochs_done
        echo(f"{label}: already trained ({done} epoch{'s' if done != 1 else ''}) in {run}")
    else:
        echo(f"{label}: {'resuming' if state else 'training'} into {run}")
        timing = _timing_callback(folder, name, run.path, len(index.train), first_epoch)
        train_run({**config, "seed": int(config.get("seed", 0)) + int(seed)}, data, run,
                  resume=state is not None, progress=progress, extra_callbacks=[timing],
                  echo=echo, reuse=True)          # the arms' traced steps reused
        _free_memory()
    _ensure_predictions(folder, name, index)


def _free_memory() -> None:
    from augmine.core.runtime import import_keras

    import_keras().backend.clear_session()


def _best_epoch_size(run) -> tuple[int | None, int | None]:
    epoch = run.read_state().best_epoch
    for row in run.read_history():
        if epoch is not None and row.get("epoch") and int(row["epoch"]) == int(epoch):
            return int(epoch), int(row["size"])
    return None, None


def _ensure_predictions(folder: ComparisonDir, name: str, index) -> None:
    """Write ``predictions/<arm>.npz`` (final = last.keras at the last phase's size, best =
    best.keras at the size of its epoch) unless it is there for the run's final epoch."""
    from augmine.runs.factories import evaluation_settings
    from augmine.train.evaluation import predict_checkpoint
    from augmine.runs.rundir import RunDir

    run = RunDir(folder.run_dir(name))
    state = run.read_state()
    path = folder.predictions_path(name)
    if path.is_file():
        with np.load(path) as got:
            if int(got["epochs_done"]) == state.epochs_done:
                return
    cfg = run.config
    size, batch = evaluation_settings(cfg)
    y_true, final = predict_checkpoint(run.checkpoint("last"), index, size, batch)
    best_epoch, best_size = _best_epoch_size(run)
    if best_epoch is not None and run.has_checkpoint("best"):
        _, best = predict_checkpoint(run.checkpoint("best"), index, best_size, batch)
    else:
        best_epoch, best_size, best = state.epochs_done, size, final
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, y_true=y_true, final=final, best=best,
                                best_epoch=best_epoch, best_size=best_size, final_size=size,
                                epochs_done=state.epochs_done)
    _free_memory()


__all__ = ["Arm", "arm_config", "default_out", "parse_strengths", "plan_arms", "run_comparison",
           "split_strength"]
