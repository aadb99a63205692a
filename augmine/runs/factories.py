"""The objects a training config describes, one factory per section (timm style):
:func:`create_schedule`, :func:`create_optimizer`, :func:`create_model`,
:func:`create_callbacks`. Keras is imported only inside them.
"""

from __future__ import annotations

from typing import Sequence

from augmine.core.errors import AugmineError
from augmine.model.schedules import MODES, phase_cycle_segments, phase_parts
from augmine.runs.config import TrainConfig
from augmine.runs.sections import ModelConfig, OptimizerConfig, ScheduleConfig


# --------------------------------------------------------------------------- schedule

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
    from augmine.model.densenet import build_densenet

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
