"""The objects a training config describes, one factory per section (timm style):
:func:`create_schedule`, :func:`create_optimizer`, :func:`create_model`,
:func:`create_callbacks`; and a run's Keras checkpoints (saving and loading them, choosing
which one is scored). Keras is imported only inside the functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.model.schedules import MODES, phase_cycle_segments, phase_parts
from augmine.runs.config import ModelConfig, OptimizerConfig, ScheduleConfig, TrainConfig
from augmine.runs.rundir import RunDir


# =========================================================================== checkpoints
# A run's Keras checkpoints: saving and loading them, and choosing which one is scored.
#
# :class:`~augmine.runs.rundir.RunDir` knows where they are (``RunDir.checkpoint``) and copies
# them (best, snapshots, branches); this module writes and reads the ``.keras`` files
# (:func:`save_checkpoint`, :func:`load_checkpoint`, which registers augmine's Keras objects
# first so they load on every backend) and holds the rules for which checkpoint and size a run
# is evaluated at (:func:`evaluation_settings`, :func:`resolve_checkpoint`,
# :func:`best_summary`). Keras is imported only inside the functions that load.

DEFAULT_SIZE = 64          # a bare .keras file with no run folder around it
DEFAULT_BATCH_SIZE = 256


# --------------------------------------------------------------------------- saving, loading

def save_checkpoint(run: RunDir, model) -> Path:
    """Save ``model`` (with its optimizer) as the run's ``last.keras``, atomically; not
    flushed on its own: the ``state.json`` written after it is the flushed commit point
    (docs/reliability.md, "durability")."""
    path = run.checkpoint("last")
    with atomic.atomic_path(path, sync=False) as tmp:
        model.save(tmp)
    return path


def register_custom_objects() -> None:
    """Register augmine's Keras objects that checkpoints can hold (the schedules of
    :mod:`augmine.model.schedules`, the soft-target loss and metric of
    :mod:`augmine.model.sources`), so ``keras.saving.load_model`` finds them."""
    from augmine.model.schedules import keras_schedules
    from augmine.model.sources import soft_target_objects

    keras_schedules()
    soft_target_objects()


def load_checkpoint(path: str | os.PathLike, compile: bool = True):
    """Load a ``.keras`` checkpoint written by the trainer (with its optimizer state unless
    ``compile=False``); one-line errors when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise AugmineError(f"{path}: checkpoint not found; train first or check the run folder")
    from augmine.core.runtime import import_keras

    keras = import_keras()
    register_custom_objects()
    try:
        return keras.saving.load_model(path, compile=compile)
    except (ValueError, OSError) as exc:
        damage = _damage(path)
        if damage:
            others = [p for p in sorted(path.parent.glob("*.keras")) if p != path and
                      _damage(p) is None]
            fix = (f"use another checkpoint of the run ({', '.join(p.name for p in others)} in "
                   f"{path.parent}) or restore the file from a copy" if others else
                   "restore the file from a copy")
            raise AugmineError(f"{path}: the checkpoint is damaged or truncated ({damage}; "
                               f"{path.stat().st_size} bytes); {fix}") from None
        raise AugmineError(f"{path}: cannot load this checkpoint ({str(exc).splitlines()[0]})")


def _damage(path: Path) -> str | None:
    """What is broken in a ``.keras`` file (a zip archive), or None when it reads whole."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"not a whole .keras archive: {exc}"
    return f"its member {bad} fails its checksum" if bad else None


# --------------------------------------------------------------------------- choosing

def evaluation_settings(cfg=None, size: int | None = None,
                        batch_size: int | None = None) -> tuple[int, int]:
    """``(size, batch size)`` for evaluating a run whose config is ``cfg`` (a TrainConfig,
    or None for a bare checkpoint). Given values win; else the last phase's size and the
    config's ``eval_batch_size`` (else ``batch_size``); with no config 64 px and 256."""
    if size is None:
        size = cfg.phases[-1].size if cfg is not None else DEFAULT_SIZE
    if batch_size is None:
        batch_size = (cfg.eval_batch_size or cfg.batch_size) if cfg is not None else \
            DEFAULT_BATCH_SIZE
    if int(size) < 1 or int(batch_size) < 1:
        raise AugmineError(f"size {size} and batch size {batch_size} must both be >= 1")
    return int(size), int(batch_size)


def resolve_checkpoint(run_or_checkpoint, which: str = "best", size: int | None = None):
    """``(checkpoint path, RunDir or None, size)`` to evaluate.

    A run folder: ``which="best"`` picks the best checkpoint at the evaluation size (the
    last phase's unless ``size`` is given) when the run kept one, else ``best.keras``, else
    ``last.keras``; ``which="last"`` picks ``last.keras``. A ``.keras`` file is used as is
    (with its run folder's config when it sits in one). ``size`` is the evaluation size.
    """
    path = Path(run_or_checkpoint).expanduser()
    if path.is_dir():
        run = RunDir(path)
        cfg = run.config if run.config_path.is_file() else None
        size, _ = evaluation_settings(cfg, size)
        if which == "best":
            options = [run.checkpoint("best", size), run.checkpoint("best"),
                       run.checkpoint("last")]
        else:
            options = [run.checkpoint(which)]
        found = [p for p in options if p.is_file()]
        if not found:
            raise AugmineError(f"{path}: no {options[0].name}; is this a run folder that "
                               "finished at least one epoch?")
        return found[0], run, size
    if not path.is_file():
        raise AugmineError(f"{path}: neither a run folder nor a .keras checkpoint")
    run = RunDir(path.parent.parent)
    if run.checkpoint("last").parent != path.parent or not run.config_path.is_file():
        run = None
    size, _ = evaluation_settings(run.config if run else None, size)
    return path, run, size


def best_summary(run_dir) -> dict | None:
    """What "best" means for a run, once: the checkpoint ``augmine evaluate RUN`` scores (the
    best epoch at the evaluation size, the last phase's) with its epoch and val top-1, and
    the best epoch at any size when that one differs. ``{"checkpoint", "epoch", "size",
    "val_accuracy", "overall": {"epoch", "size", "val_accuracy", "checkpoint"} or None}``;
    None before the first epoch."""
    run = RunDir.of(run_dir)
    state = run.read_state()
    size, _ = evaluation_settings(run.config)
    here = state.best_by_size.get(str(size))
    if here is None:
        return None
    sizes = {int(r["epoch"]): int(r["size"]) for r in run.read_history() if r.get("epoch")}
    overall = None
    if state.best_epoch is not None and state.best_epoch != here.epoch:
        overall = {"epoch": state.best_epoch, "size": sizes.get(state.best_epoch),
                   "val_accuracy": state.best_val_accuracy,
                   "checkpoint": str(run.checkpoint("best"))}
    return {"checkpoint": str(run.checkpoint("best", size)), "epoch": here.epoch,
            "size": size, "val_accuracy": here.val_accuracy, "overall": overall}


def format_best(best: dict, run) -> list[str]:
    """Lines for ``augmine train``'s summary: the checkpoint ``evaluate`` scores, and the
    best epoch at another size when there is one."""
    lines = [f"best val  {best['val_accuracy']:.2%} at epoch {best['epoch']} ({best['size']} "
             f"px): {best['checkpoint']}, what `augmine evaluate {run}` scores"]
    o = best["overall"]
    if o is not None:
        lines.append(f"          (epoch {o['epoch']} at {o['size']} px had {o['val_accuracy']:.2%} "
                     f"at its own size; it is in {o['checkpoint']}, and scored at "
                     f"{best['size']} px it differs)")
    return lines


# =========================================================================== factories

def _total_steps(phase_steps, mode: str) -> int:
    if not phase_steps:
        raise ValueError(f"schedule mode {mode!r} needs the phases' step counts")
    return sum(total for total, _, _ in phase_parts(phase_steps))


def _warmup_steps(cfg: ScheduleConfig, phase_steps, total: int) -> int:
    """Warm-up length from ``warmup_steps``, ``warmup_epochs`` or ``warmup_fraction`` of
    ``total`` (the resolved config holds one of them)."""
    if cfg.warmup_steps is not None:
        steps = cfg.warmup_steps
    elif cfg.warmup_epochs is not None:
        first = phase_parts(phase_steps)[0]
        if first[1] is None:
            raise ValueError("warmup_epochs needs (steps_per_epoch, epochs) phases")
        steps = round(cfg.warmup_epochs * first[1])
    else:
        steps = round(cfg.warmup_fraction * total)
    if not 0 <= steps < total:
        raise ValueError(f"warm-up of {steps} steps must be >= 0 and shorter than the "
                         f"run's {total} steps")
    return steps


def _build_schedule(cfg: ScheduleConfig, phase_steps: Sequence | None):
    """The schedule of a validated ``cfg`` (its defaults filled in by :class:`ScheduleConfig`);
    a one-line ValueError when it does not fit the phases."""
    from augmine.model.schedules import CyclicLR, PhaseCyclicLR, PiecewiseLinearLR

    mode, min_lr, max_lr = cfg.mode, cfg.min_lr, cfg.max_lr
    if mode in MODES:
        if cfg.half_cycle == "auto":
            if not phase_steps:
                raise ValueError("half_cycle: auto needs the phases' step counts")
            return PhaseCyclicLR(phase_cycle_segments(
                phase_steps, min_lr, max_lr, mode, cfg.gamma,
                cycles_per_phase=cfg.cycles_per_phase, cycle_epochs=cfg.cycle_epochs))
        return CyclicLR(min_lr, max_lr, cfg.half_cycle, mode=mode, gamma=cfg.gamma)

    from augmine.core.runtime import import_keras

    keras = import_keras()
    total = _total_steps(phase_steps, mode)
    warm = _warmup_steps(cfg, phase_steps, total)
    if mode == "cosine":
        if warm == 0:
            return keras.optimizers.schedules.CosineDecay(
                max_lr, decay_steps=total, alpha=min_lr / max_lr)
        return keras.optimizers.schedules.CosineDecay(
            min_lr, decay_steps=total - warm, alpha=min_lr / max_lr,
            warmup_target=max_lr, warmup_steps=warm)
    final_lr = cfg.final_lr
    if cfg.anneal == "cos":
        return keras.optimizers.schedules.CosineDecay(
            min_lr, decay_steps=total - warm, alpha=final_lr / max_lr,
            warmup_target=max_lr, warmup_steps=warm)
    if 2 * warm >= total or warm == 0:
        raise ValueError(f"linear one_cycle needs 0 < warm-up < half the run; got {warm} "
                         f"of {total} steps")
    return PiecewiseLinearLR([0, warm, 2 * warm, total], [min_lr, max_lr, min_lr, final_lr])


def create_schedule(cfg: ScheduleConfig, phase_steps: Sequence | None = None,
                    where: str = "config"):
    """The Keras learning-rate schedule ``cfg`` describes (see :class:`ScheduleConfig` for
    the modes, keys and defaults): ``CyclicLR``, ``PhaseCyclicLR`` (``half_cycle: auto``),
    Keras' ``CosineDecay`` (``cosine``, ``one_cycle`` with ``anneal: cos``) or
    ``PiecewiseLinearLR`` (``one_cycle`` with ``anneal: linear``), stepped per batch.

    ``phase_steps``: one item per training phase, its step count or a ``(steps_per_epoch,
    epochs)`` pair (needed by ``cycle_epochs`` and ``warmup_epochs``); required by
    ``half_cycle: auto``, ``one_cycle`` and ``cosine``. ``where``: the config file named in
    errors. A spec that does not fit the phases raises a one-line :class:`AugmineError`.
    """
    try:
        return _build_schedule(cfg, phase_steps)
    except ValueError as exc:
        steps = ""
        if phase_steps:
            parts = [f"{p[1]} epochs x {p[0]} steps" if isinstance(p, (tuple, list))
                     else f"{p} steps" for p in phase_steps]
            steps = f" (phases: {', '.join(parts)})"
        raise AugmineError(f"{where}: schedule: {exc}{steps}") from None


# ------------------------------------------------------------------ optimizer, model, callbacks

def create_optimizer(cfg: OptimizerConfig, schedule):
    """The Keras optimizer ``cfg`` names, driven by ``schedule`` (a schedule or a float)."""
    from augmine.core.runtime import import_keras

    keras = import_keras()
    cls = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam,
           "adamw": keras.optimizers.AdamW, "rmsprop": keras.optimizers.RMSprop}[cfg.name]
    kwargs = cfg.kwargs()
    if not kwargs.get("weight_decay"):
        kwargs.pop("weight_decay", None)   # 0 = off: no per-step decay ops at all
    return cls(learning_rate=schedule, **kwargs)


def create_model(cfg: ModelConfig, num_classes: int, where: str = "config"):
    """The (uncompiled) model ``cfg`` describes, with ``num_classes`` outputs: the DenseNet,
    or a builder/application/file model taking uint8 images (see
    :func:`augmine.model.sources.build_any`). ``where``: the config file named in errors."""
    if cfg.kind != "densenet":
        from augmine.model.sources import build_any

        return build_any(cfg, num_classes, where)
    from augmine.model.sources import build_densenet

    return build_densenet(num_classes, **cfg.options())


def create_callbacks(cfg: TrainConfig) -> list:
    """The Keras callbacks the config's ``callbacks:`` factories return (each called with no
    arguments); a factory that fails or returns no Callback is a one-line error."""
    from augmine.core.runtime import import_keras, load_object

    keras, where, out = import_keras(), cfg.path or "config", []
    for i, spec in enumerate(cfg.callbacks or (), 1):
        factory = load_object(spec, f"callbacks[{i}]", where)
        try:
            callback = factory()
        except Exception as exc:  # noqa: BLE001 - the user's code: one line, not a traceback
            raise AugmineError(f"{where}: callbacks[{i}]: {spec}() failed ({type(exc).__name__}: "
                               f"{exc}); fix the factory") from None
        if not isinstance(callback, keras.callbacks.Callback):
            raise AugmineError(f"{where}: callbacks[{i}]: {spec}() returned a "
                               f"{type(callback).__name__}, not a keras.callbacks.Callback")
        out.append(callback)
    return out
