"""Learning-rate schedules (cyclic, phase-aligned cyclic, one-cycle, cosine) and the LR range test.

Hand-written on purpose: no maintained library offers a cyclic learning rate for Keras 3
(TensorFlow Addons' ``CyclicalLearningRate`` reached end of life and does not work with
Keras 3 optimizers), so :class:`CyclicLR` implements the paper's three policies here as
an ordinary serializable ``keras.optimizers.schedules.LearningRateSchedule``;
:class:`PhaseCyclicLR` is the same triangle over explicit segments (cycles aligned to the
training phases) and :class:`PiecewiseLinearLR` the linear one-cycle policy, which Keras
lacks (it only has ``PiecewiseConstantDecay``). Cosine decay with warm-up and the cosine
one-cycle policy are Keras' own ``CosineDecay``. :func:`create_schedule` builds any of them
from a config dict. All schedules use ``keras.ops`` only, so they run on every backend.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from augmine.core.runtime import import_keras

keras = import_keras()  # quiet TensorFlow logs (TF backend); augmine.model.schedules loads lazily

MODES = ("triangular", "triangular2", "exp_range")


@keras.saving.register_keras_serializable(package="augmine", name="CyclicLR")
class CyclicLR(keras.optimizers.schedules.LearningRateSchedule):
    """Cyclic learning rate, stepped per batch (Smith, "Cyclical Learning Rates for
    Training Neural Networks", WACV 2017). No maintained Keras 3 library offers it
    (TensorFlow Addons is end-of-life), so it is written here.

    ``cycle = floor(1 + step / (2 * half_cycle))``,
    ``x = |step / half_cycle - 2 * cycle + 1|``,
    ``lr = min_lr + (max_lr - min_lr) * max(0, 1 - x) * scale`` where ``scale`` is
    1 (``triangular``), ``1 / 2**(cycle - 1)`` (``triangular2``) or ``gamma**step``
    (``exp_range``). The rate starts at ``min_lr``, peaks at ``max_lr`` after
    ``half_cycle`` steps and is back at ``min_lr`` after ``2 * half_cycle``.

    ``step`` is the optimizer's ``iterations``, which is saved in checkpoints and keeps
    counting across phases, resumes and mining rounds: the schedule never restarts.
    """

    def __init__(self, min_lr: float = 0.001, max_lr: float = 0.05,
                 half_cycle: int = 2000, mode: str = "triangular",
                 gamma: float = 0.99994, name: str = "CyclicLR"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not 0 < min_lr <= max_lr:
            raise ValueError(f"need 0 < min_lr <= max_lr, got {min_lr}, {max_lr}")
        if int(half_cycle) < 1:
            raise ValueError(f"half_cycle must be >= 1 step, got {half_cycle}")
        self.min_lr = float(min_lr)
        self.max_lr = float(max_lr)
        self.half_cycle = int(half_cycle)
        self.mode = mode
        self.gamma = float(gamma)
        self.name = name

    def __call__(self, step):
        from keras import ops

        step = ops.cast(step, "float32")
        half = float(self.half_cycle)
        cycle = ops.floor(1.0 + step / (2.0 * half))
        x = ops.abs(step / half - 2.0 * cycle + 1.0)
        ramp = ops.maximum(0.0, 1.0 - x)
        if self.mode == "triangular2":
            scale = 1.0 / ops.power(2.0, cycle - 1.0)
        elif self.mode == "exp_range":
            scale = ops.exp(step * math.log(self.gamma))  # gamma**step without float32 pow drift
        else:
            scale = 1.0
        return self.min_lr + (self.max_lr - self.min_lr) * ramp * scale

    def get_config(self) -> dict[str, Any]:
        return {"min_lr": self.min_lr, "max_lr": self.max_lr,
                "half_cycle": self.half_cycle, "mode": self.mode,
                "gamma": self.gamma, "name": self.name}


def cyclic_lr_value(step: float, min_lr: float = 0.001, max_lr: float = 0.05,
                    half_cycle: int = 2000, mode: str = "triangular",
                    gamma: float = 0.99994) -> float:
    """The same formula as :class:`CyclicLR` in plain Python (for plots and reports)."""
    cycle = math.floor(1 + step / (2 * half_cycle))
    x = abs(step / half_cycle - 2 * cycle + 1)
    scale = {"triangular": 1.0, "triangular2": 1.0 / 2 ** (cycle - 1),
             "exp_range": gamma ** step}[mode]
    return min_lr + (max_lr - min_lr) * max(0.0, 1.0 - x) * scale


# --------------------------------------------------------------------------- phase-aligned cycles

def _phase_parts(phases) -> list[tuple[int, int | None, int | None]]:
    """``phases`` items as ``(total_steps, steps_per_epoch or None, epochs or None)``."""
    parts = []
    for i, ph in enumerate(phases, 1):
        if isinstance(ph, (tuple, list)):
            if len(ph) != 2:
                raise ValueError(f"phase {i}: give (steps_per_epoch, epochs), got {ph!r}")
            spe, epochs = int(ph[0]), int(ph[1])
            if spe < 1 or epochs < 1:
                raise ValueError(f"phase {i}: steps_per_epoch and epochs must be >= 1, got {ph!r}")
            parts.append((spe * epochs, spe, epochs))
        else:
            if int(ph) < 1:
                raise ValueError(f"phase {i}: step count must be >= 1, got {ph!r}")
            parts.append((int(ph), None, None))
    if not parts:
        raise ValueError("need at least one phase")
    return parts


def _split(total: int, n: int) -> list[int]:
    """``total`` split into ``n`` near-equal integer parts (larger parts first)."""
    base, extra = divmod(total, n)
    return [base + (1 if k < extra else 0) for k in range(n)]


def phase_cycles(phases, cycles_per_phase: int | Sequence[int] | None = None,
                 cycle_epochs: float | None = None) -> list[tuple[int, int]]:
    """Cycle boundaries aligned to the training phases, so every phase (and the run) ends
    where a cycle ends, i.e. at the minimum learning rate.

    ``phases``: one item per phase, either its step count (``steps_per_epoch * epochs``) or
    a ``(steps_per_epoch, epochs)`` pair. Give either ``cycles_per_phase`` (an int for all
    phases or one int per phase) or ``cycle_epochs`` (wanted cycle length in epochs; each
    phase gets ``max(1, round(epochs / cycle_epochs))`` cycles; needs the pair form);
    neither means one cycle per phase. With the pair form, cycles are whole epochs whenever
    a phase has at least as many epochs as cycles, so cycle ends fall on epoch ends.
    Returns ``[(start_step, length), ...]`` covering ``0 .. sum(steps)`` without gaps.
    """
    parts = _phase_parts(phases)
    if cycles_per_phase is not None and cycle_epochs is not None:
        raise ValueError("give cycles_per_phase or cycle_epochs, not both")
    if cycle_epochs is not None:
        if not float(cycle_epochs) > 0:
            raise ValueError(f"cycle_epochs must be > 0, got {cycle_epochs!r}")
        if any(spe is None for _, spe, _ in parts):
            raise ValueError("cycle_epochs needs (steps_per_epoch, epochs) for every phase")
        counts = [max(1, round(epochs / float(cycle_epochs))) for _, _, epochs in parts]
    elif cycles_per_phase is None:
        counts = [1] * len(parts)
    elif isinstance(cycles_per_phase, (list, tuple)):
        if len(cycles_per_phase) != len(parts):
            raise ValueError(f"cycles_per_phase has {len(cycles_per_phase)} entries for "
                             f"{len(parts)} phases")
        counts = [int(c) for c in cycles_per_phase]
    else:
        counts = [int(cycles_per_phase)] * len(parts)
    cycles: list[tuple[int, int]] = []
    start = 0
    for i, ((total, spe, epochs), n) in enumerate(zip(parts, counts), 1):
        if n < 1:
            raise ValueError(f"phase {i}: cycles per phase must be >= 1, got {n}")
        if spe is not None and epochs >= n:
            lengths = [spe * e for e in _split(epochs, n)]
        else:
            lengths = _split(total, n)
        if min(lengths) < 2:
            raise ValueError(f"phase {i}: {total} steps cannot hold {n} cycles of >= 2 steps")
        for length in lengths:
            cycles.append((start, length))
            start += length
    return cycles


def phase_cycle_segments(phases, min_lr: float, max_lr: float, mode: str = "triangular",
                         gamma: float = 0.99994, cycles_per_phase=None,
                         cycle_epochs: float | None = None) -> list[dict[str, Any]]:
    """Segments for :class:`PhaseCyclicLR`: one triangle per cycle of :func:`phase_cycles`.

    ``mode`` follows :class:`CyclicLR`: ``triangular`` (same peak every cycle),
    ``triangular2`` (peak height above ``min_lr`` halves every cycle, counted over the run)
    or ``exp_range`` (height scaled by ``gamma**step``, ``step`` counted over the run).
    Returns ``[{"start", "length", "min_lr", "max_lr", "gamma"}, ...]``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    segments = []
    for k, (start, length) in enumerate(phase_cycles(phases, cycles_per_phase, cycle_epochs)):
        peak = max_lr if mode != "triangular2" else min_lr + (max_lr - min_lr) / 2 ** k
        segments.append({"start": start, "length": length, "min_lr": float(min_lr),
                         "max_lr": float(peak),
                         "gamma": float(gamma) if mode == "exp_range" else 1.0})
    return segments


@keras.saving.register_keras_serializable(package="augmine", name="PhaseCyclicLR")
class PhaseCyclicLR(keras.optimizers.schedules.LearningRateSchedule):
    """Triangular cycles over explicit segments (e.g. aligned to training phases).

    ``segments``: ``[{"start", "length", "min_lr", "max_lr", "gamma"?}, ...]`` sorted by
    ``start``, not overlapping. Inside a segment, with ``x = (step - start) / length``,
    ``lr = min_lr + (max_lr - min_lr) * (1 - |2x - 1|) * gamma**step``: the rate rises
    linearly from ``min_lr`` to ``max_lr`` at the segment's middle and is back at ``min_lr``
    at its end (``gamma`` defaults to 1; < 1 is the ``exp_range`` policy). Between segments
    and after the last one the rate stays at the previous segment's ``min_lr``; before the
    first, at the first one's. A segment ``(2k * h, 2h)`` per cycle reproduces
    :class:`CyclicLR` with ``half_cycle=h``. Works on scalar or 1-D ``step``.
    """

    def __init__(self, segments: Sequence[dict[str, Any]], name: str = "PhaseCyclicLR"):
        super().__init__()
        if not segments:
            raise ValueError("PhaseCyclicLR needs at least one segment")
        clean = []
        end = -math.inf
        for i, seg in enumerate(segments):
            unknown = set(seg) - {"start", "length", "min_lr", "max_lr", "gamma"}
            if unknown:
                raise ValueError(f"segment {i}: unknown keys {sorted(unknown)}")
            try:
                s = {"start": int(seg["start"]), "length": int(seg["length"]),
                     "min_lr": float(seg["min_lr"]), "max_lr": float(seg["max_lr"]),
                     "gamma": float(seg.get("gamma", 1.0))}
            except KeyError as exc:
                raise ValueError(f"segment {i}: missing key {exc.args[0]!r}") from None
            if s["length"] < 1 or s["start"] < end:
                raise ValueError(f"segment {i}: needs length >= 1 and start >= the previous "
                                 f"segment's end, got start {s['start']}, length {s['length']}")
            if not 0 < s["min_lr"] <= s["max_lr"]:
                raise ValueError(f"segment {i}: need 0 < min_lr <= max_lr, got "
                                 f"{s['min_lr']}, {s['max_lr']}")
            if not 0 < s["gamma"] <= 1:
                raise ValueError(f"segment {i}: need 0 < gamma <= 1, got {s['gamma']}")
            end = s["start"] + s["length"]
            clean.append(s)
        self.segments = clean
        self.name = name

    @property
    def total_steps(self) -> int:
        """The step where the last segment ends."""
        last = self.segments[-1]
        return last["start"] + last["length"]

    def __call__(self, step):
        from keras import ops

        step = ops.cast(step, "float32")
        col = {k: ops.convert_to_tensor([s[k] for s in self.segments], dtype="float32")
               for k in ("start", "length", "min_lr", "max_lr")}
        log_gamma = ops.convert_to_tensor([math.log(s["gamma"]) for s in self.segments],
                                          dtype="float32")
        # index of the segment that started last at or before ``step`` (0 before the first)
        started = ops.cast(ops.expand_dims(step, -1) >= col["start"], "int32")
        idx = ops.maximum(ops.sum(started, axis=-1) - 1, 0)
        start, length = ops.take(col["start"], idx), ops.take(col["length"], idx)
        x = ops.clip((step - start) / length, 0.0, 1.0)
        ramp = 1.0 - ops.abs(2.0 * x - 1.0)
        scale = ops.exp(step * ops.take(log_gamma, idx))  # gamma**step without float32 pow drift
        lo, hi = ops.take(col["min_lr"], idx), ops.take(col["max_lr"], idx)
        return lo + (hi - lo) * ramp * scale

    def get_config(self) -> dict[str, Any]:
        return {"segments": [dict(s) for s in self.segments], "name": self.name}


@keras.saving.register_keras_serializable(package="augmine", name="PiecewiseLinearLR")
class PiecewiseLinearLR(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate interpolated linearly between ``(steps[i], values[i])`` points and held
    flat outside them. Written here because Keras only has ``PiecewiseConstantDecay``; used
    for the linear one-cycle policy. ``steps`` strictly increasing ints, ``values`` > 0.
    Works on scalar or 1-D ``step``.
    """

    def __init__(self, steps: Sequence[int], values: Sequence[float],
                 name: str = "PiecewiseLinearLR"):
        super().__init__()
        steps, values = [int(s) for s in steps], [float(v) for v in values]
        if len(steps) < 2 or len(steps) != len(values):
            raise ValueError(f"need >= 2 points and as many values as steps, got "
                             f"{len(steps)} steps and {len(values)} values")
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"steps must be strictly increasing, got {steps}")
        if min(values) <= 0:
            raise ValueError(f"learning rates must be > 0, got {values}")
        self.steps, self.values, self.name = steps, values, name

    def __call__(self, step):
        from keras import ops

        step = ops.cast(step, "float32")
        xs = ops.convert_to_tensor(self.steps, dtype="float32")
        ys = ops.convert_to_tensor(self.values, dtype="float32")
        right = ops.cast(ops.expand_dims(step, -1) >= xs, "int32")
        idx = ops.clip(ops.sum(right, axis=-1) - 1, 0, len(self.steps) - 2)
        x0, x1 = ops.take(xs, idx), ops.take(xs, idx + 1)
        y0, y1 = ops.take(ys, idx), ops.take(ys, idx + 1)
        t = ops.clip((step - x0) / (x1 - x0), 0.0, 1.0)
        return y0 + (y1 - y0) * t

    def get_config(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "values": list(self.values), "name": self.name}


# --------------------------------------------------------------------------- factory

SCHEDULE_MODES = MODES + ("one_cycle", "cosine")
_KEYS = {
    # gamma is accepted (and ignored) by triangular modes, as CyclicLR does
    "triangular": {"min_lr", "max_lr", "half_cycle", "cycles_per_phase", "cycle_epochs", "gamma"},
    "one_cycle": {"min_lr", "max_lr", "final_lr", "warmup_fraction", "warmup_steps",
                  "warmup_epochs", "anneal"},
    "cosine": {"min_lr", "max_lr", "warmup_steps", "warmup_epochs"},
}
_KEYS["triangular2"] = _KEYS["triangular"]
_KEYS["exp_range"] = _KEYS["triangular"]


def _number(spec: dict, key: str, default: float, integer: bool = False) -> float:
    """``spec[key]`` (or ``default``) as a float, or an int when ``integer``; one-line error."""
    value = spec.get(key, default)
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"schedule {key} must be {kind}, got {value!r}")
    return int(value) if integer else float(value)


def _total_steps(phase_steps, mode: str) -> int:
    if not phase_steps:
        raise ValueError(f"schedule mode {mode!r} needs the phases' step counts")
    return sum(total for total, _, _ in _phase_parts(phase_steps))


def _warmup_steps(spec: dict, phase_steps, total: int, default_fraction: float) -> int:
    """Warm-up length from ``warmup_steps``, ``warmup_epochs`` or a fraction of ``total``."""
    given = [k for k in ("warmup_steps", "warmup_epochs", "warmup_fraction") if k in spec]
    if len(given) > 1:
        raise ValueError(f"give only one of {', '.join(given)}")
    if "warmup_steps" in spec:
        steps = _number(spec, "warmup_steps", 0, integer=True)
    elif "warmup_epochs" in spec:
        first = _phase_parts(phase_steps)[0]
        if first[1] is None:
            raise ValueError("warmup_epochs needs (steps_per_epoch, epochs) phases")
        steps = round(_number(spec, "warmup_epochs", 0) * first[1])
    else:
        fraction = _number(spec, "warmup_fraction", default_fraction)
        if not 0 <= fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {fraction}")
        steps = round(fraction * total)
    if not 0 <= steps < total:
        raise ValueError(f"warm-up of {steps} steps must be >= 0 and shorter than the "
                         f"run's {total} steps")
    return steps


def create_schedule(spec: dict[str, Any], phase_steps: Sequence | None = None):
    """Build a Keras learning-rate schedule from a config dict.

    ``phase_steps``: one item per training phase, its step count (``steps_per_epoch *
    epochs``) or a ``(steps_per_epoch, epochs)`` pair (needed by ``cycle_epochs`` and
    ``warmup_epochs``); required by ``half_cycle: auto``, ``one_cycle`` and ``cosine``.
    ``spec`` keys (``mode`` defaults to ``triangular``; unknown keys are an error):

    - ``triangular`` / ``triangular2`` / ``exp_range`` (cyclic, Smith 2017): ``min_lr``
      (0.001), ``max_lr`` (0.05), ``gamma`` (used by ``exp_range`` only, 0.99994) and
      ``half_cycle``: an int (steps; 2000, the reference run) gives :class:`CyclicLR`,
      which ignores phases; ``"auto"`` gives :class:`PhaseCyclicLR` with cycles aligned to
      the phases (:func:`phase_cycles`: ``cycles_per_phase``, int or list, default 1, or
      ``cycle_epochs``), so every phase and the run end at ``min_lr``.
    - ``one_cycle`` (Smith & Topin 2018): the rate rises linearly from ``min_lr``
      (default ``max_lr / 25``) to ``max_lr`` over the warm-up (``warmup_fraction``,
      default 0.3 of the run, or ``warmup_steps`` / ``warmup_epochs``), then anneals to
      ``final_lr`` (default ``min_lr / 1000``) at the run's end. ``anneal: "cos"`` (default)
      is Keras' ``CosineDecay``; ``"linear"`` (Smith & Topin's form) comes down linearly to
      ``min_lr`` over as many steps as the warm-up took, then to ``final_lr`` at the end
      (:class:`PiecewiseLinearLR`).
    - ``cosine``: Keras' ``CosineDecay``: linear warm-up from ``min_lr`` to ``max_lr`` over
      ``warmup_steps`` / ``warmup_epochs`` (default none: starts at ``max_lr``), then cosine
      decay to ``min_lr`` (default ``max_lr / 100``) at the run's end.

    Returns a ``keras.optimizers.schedules.LearningRateSchedule`` stepped per batch.
    Raises a one-line ``ValueError`` for a bad spec.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"schedule must be a mapping, got {type(spec).__name__}")
    spec = dict(spec)
    mode = spec.pop("mode", "triangular")
    if mode not in SCHEDULE_MODES:
        raise ValueError(f"schedule mode must be one of {', '.join(SCHEDULE_MODES)}, "
                         f"got {mode!r}")
    unknown = sorted(set(spec) - _KEYS[mode])
    if unknown:
        raise ValueError(f"unknown schedule key(s) for mode {mode!r}: {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(_KEYS[mode]))}")
    max_lr = _number(spec, "max_lr", 0.05)
    min_lr = _number(spec, "min_lr", {"one_cycle": max_lr / 25,
                                      "cosine": max_lr / 100}.get(mode, 0.001))
    if not 0 < min_lr <= max_lr:
        raise ValueError(f"need 0 < min_lr <= max_lr, got {min_lr}, {max_lr}")

    if mode in MODES:
        half = spec.get("half_cycle", 2000)
        gamma = _number(spec, "gamma", 0.99994)
        if not 0 < gamma <= 1:
            raise ValueError(f"schedule gamma must be in (0, 1], got {gamma}")
        if half == "auto":
            if not phase_steps:
                raise ValueError("half_cycle: auto needs the phases' step counts")
            per_phase = spec.get("cycles_per_phase")
            if per_phase is not None and not (
                    isinstance(per_phase, int) and not isinstance(per_phase, bool)
                    or isinstance(per_phase, (list, tuple))
                    and all(isinstance(c, int) and not isinstance(c, bool) for c in per_phase)):
                raise ValueError(f"schedule cycles_per_phase must be a whole number or a list "
                                 f"of them, one per phase, got {per_phase!r}")
            cycle_epochs = (_number(spec, "cycle_epochs", 0) if "cycle_epochs" in spec
                            else None)
            return PhaseCyclicLR(phase_cycle_segments(
                phase_steps, min_lr, max_lr, mode, gamma,
                cycles_per_phase=per_phase, cycle_epochs=cycle_epochs))
        if "cycles_per_phase" in spec or "cycle_epochs" in spec:
            raise ValueError("cycles_per_phase and cycle_epochs need half_cycle: auto")
        if isinstance(half, bool) or not isinstance(half, int):
            raise ValueError(f"half_cycle must be a step count or 'auto', got {half!r}")
        return CyclicLR(min_lr, max_lr, half, mode=mode, gamma=gamma)

    total = _total_steps(phase_steps, mode)
    if mode == "cosine":
        warm = _warmup_steps(spec, phase_steps, total, 0.0)
        if warm == 0:
            return keras.optimizers.schedules.CosineDecay(
                max_lr, decay_steps=total, alpha=min_lr / max_lr)
        return keras.optimizers.schedules.CosineDecay(
            min_lr, decay_steps=total - warm, alpha=min_lr / max_lr,
            warmup_target=max_lr, warmup_steps=warm)

    final_lr = _number(spec, "final_lr", min_lr / 1000)
    if not 0 < final_lr <= min_lr:
        raise ValueError(f"need 0 < final_lr <= min_lr, got {final_lr}, {min_lr}")
    anneal = spec.get("anneal", "cos")
    warm = _warmup_steps(spec, phase_steps, total, 0.3)
    if anneal == "cos":
        return keras.optimizers.schedules.CosineDecay(
            min_lr, decay_steps=total - warm, alpha=final_lr / max_lr,
            warmup_target=max_lr, warmup_steps=warm)
    if anneal != "linear":
        raise ValueError(f"anneal must be 'cos' or 'linear', got {anneal!r}")
    if 2 * warm >= total or warm == 0:
        raise ValueError(f"linear one_cycle needs 0 < warm-up < half the run; got {warm} "
                         f"of {total} steps")
    return PiecewiseLinearLR([0, warm, 2 * warm, total], [min_lr, max_lr, min_lr, final_lr])


# --------------------------------------------------------------------------- plotting

def _cosine_decay_values(schedule, steps):
    """Keras ``CosineDecay`` evaluated with numpy at every step (its ``__call__`` uses
    ``ops.cond`` and only takes scalars, ~1 ms a call on TensorFlow and far more on JAX).
    The formula is Keras' own, as documented for ``CosineDecay``; a test checks it."""
    import numpy as np

    cfg = schedule.get_config()
    step = np.asarray(steps, dtype=np.float64)
    init, decay, alpha = cfg["initial_learning_rate"], cfg["decay_steps"], cfg["alpha"]
    target, warm = cfg.get("warmup_target"), cfg.get("warmup_steps") or 0
    if target is None:
        peak, warm = init, 0
    else:
        peak = target
    s = np.minimum(step, decay + warm)
    t = np.minimum(np.maximum(s - warm, 0) / decay, 1.0)
    decayed = peak * ((1 - alpha) * 0.5 * (1 + np.cos(np.pi * t)) + alpha)
    if warm:
        rising = init + (target - init) * (s / warm)
        return np.where(s < warm, rising, decayed)
    return decayed


def lr_values(schedule, steps: int):
    """The schedule's learning rate at steps ``0 .. steps-1``: numpy float64 ``(steps,)``.

    Schedules of this module are evaluated in one vectorised call; Keras ``CosineDecay``
    through its formula in numpy; any other schedule one step at a time (slow for long runs).
    """
    import numpy as np

    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    idx = np.arange(steps)
    if isinstance(schedule, (CyclicLR, PhaseCyclicLR, PiecewiseLinearLR)):
        return np.asarray(keras.ops.convert_to_numpy(schedule(idx)), dtype=np.float64)
    if isinstance(schedule, keras.optimizers.schedules.CosineDecay):
        return _cosine_decay_values(schedule, idx)
    if callable(schedule):
        return np.array([float(keras.ops.convert_to_numpy(schedule(int(i)))) for i in idx])
    return np.full(steps, float(schedule))  # a constant learning rate


def _save_png(fig, out_png) -> Path:
    """Write a matplotlib figure to ``out_png`` atomically, close it, return the path."""
    import matplotlib.pyplot as plt

    from augmine.core.atomic import atomic_path

    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(out_png)


def plot_lr_schedule(lrs, phase_boundaries: Sequence[int], out_png: str | os.PathLike,
                     title: str = "learning rate over the run") -> Path:
    """Write the per-step learning rate ``lrs`` (S,) over the whole run, with a dashed line
    at each phase boundary (step indices where a new phase starts, e.g. the cumulative
    phase step counts), atomically to ``out_png``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    lrs = np.asarray(lrs, dtype=float)
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    ax.plot(np.arange(len(lrs)), lrs, color="C0", lw=1.5)
    inside = [int(b) for b in phase_boundaries if 0 < b < len(lrs)]
    for k, b in enumerate(inside):
        ax.axvline(b, color="0.4", ls="--", lw=1, label="phase boundary" if k == 0 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.set_xlim(0, max(len(lrs) - 1, 1))
    ax.set_ylim(bottom=0)
    if inside:
        ax.legend(loc="upper right")
    return _save_png(fig, out_png)


# --------------------------------------------------------------------------- LR range test

def smooth_losses(losses, smoothing: float = 0.9):
    """Bias-corrected exponential moving average of ``losses`` (S,), as in the fast.ai LR
    finder: ``avg = smoothing * avg + (1 - smoothing) * loss``, divided by
    ``1 - smoothing**(i + 1)`` so the first values are not pulled towards 0. Returns (S,)."""
    import numpy as np

    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    losses = np.asarray(losses, dtype=np.float64)
    out = np.empty_like(losses)
    avg = 0.0
    for i, value in enumerate(losses):
        avg = smoothing * avg + (1 - smoothing) * value
        out[i] = avg / (1 - smoothing ** (i + 1))
    return out


def suggest_lr_range(lrs, losses, smoothing: float = 0.9, skip_start: float = 0.1,
                     min_skip: int = 5, diverge_factor: float = 4.0) -> dict[str, Any]:
    """Suggest ``min_lr``/``max_lr`` from an LR range test (Smith 2017, section 3.3).

    ``lrs``, ``losses``: (S,) per-step learning rates (increasing) and batch losses.

    1. Smooth the losses (:func:`smooth_losses`, bias-corrected EMA).
    2. Cut at divergence: at the first non-finite loss or the first step whose smoothed
       loss exceeds ``diverge_factor`` x the lowest smoothed loss so far.
    3. Ignore the first ``max(min_skip, skip_start * S)`` steps, whose noise (a fresh
       model's loss jumps between batches) used to decide the suggestion.
    4. ``lr_at_min_loss``: the rate of the lowest smoothed loss in what is left.
       ``steepest_lr``: where the smoothed loss falls fastest against ``log(lr)`` before that
       minimum, the slope taken over a window of ``S / 25`` steps either side so single
       noisy batches cannot decide it.
    5. ``max_lr = max(steepest_lr, lr_at_min_loss / 10)``, at most ``lr_at_min_loss``: the
       steepest point is where training learns fastest; ``lr_at_min_loss / 10`` is the
       usual safe bound below the minimum and wins when the curve falls over a long stretch
       (CLR wants the largest rate that still lowers the loss, Smith 2017). ``min_lr =
       max_lr / 10``.

    Returns ``{"min_lr", "max_lr", "lr_at_min_loss", "steepest_lr", "smoothed" (list, one
    per finite step before the cut), "used_steps", "skipped_steps", "warning"}``;
    ``warning`` is a one-line note when the loss never fell (then the suggestion is a guess),
    otherwise None.
    """
    import numpy as np

    lrs = np.asarray(lrs, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if lrs.shape != losses.shape or lrs.ndim != 1:
        raise ValueError(f"lrs and losses must be 1-D of equal length, got {lrs.shape} "
                         f"and {losses.shape}")
    bad = np.nonzero(~np.isfinite(losses))[0]
    n = int(bad[0]) if len(bad) else len(losses)
    if n < 5:
        raise ValueError("the LR range test needs at least 5 finite losses before the "
                         "loss diverges; lower start_lr")
    lrs, losses = lrs[:n], losses[:n]
    smooth = smooth_losses(losses, smoothing)
    over = np.nonzero(smooth > diverge_factor * np.minimum.accumulate(smooth))[0]
    cut = int(over[0]) if len(over) else n
    cut = max(cut, 5)
    skip = min(max(int(min_skip), int(math.ceil(skip_start * cut))), cut - 2)
    i_min = skip + int(np.argmin(smooth[skip:cut]))
    lr_at_min = float(lrs[i_min])
    log_lr = np.log(lrs[:cut])
    k = max(1, cut // 25)
    idx = np.arange(cut)
    lo, hi = np.maximum(idx - k, 0), np.minimum(idx + k, cut - 1)
    slope = (smooth[hi] - smooth[lo]) / np.maximum(log_lr[hi] - log_lr[lo], 1e-12)
    i_steep = skip + int(np.argmin(slope[skip:i_min + 1]))
    steep = float(lrs[i_steep])
    max_lr = min(max(steep, lr_at_min / 10.0), lr_at_min)
    warning = None
    noise = float(np.std(np.diff(losses[:cut]))) / math.sqrt(2) if cut > 2 else 0.0
    if smooth[skip] - smooth[i_min] <= noise:  # no fall beyond one batch's noise
        warning = ("the smoothed loss never fell clearly during the LR range test; the "
                   "suggestion is a guess: try a lower start_lr or more steps")
    return {"min_lr": float(max_lr / 10.0), "max_lr": float(max_lr),
            "lr_at_min_loss": lr_at_min, "steepest_lr": steep,
            "smoothed": smooth[:cut].tolist(), "used_steps": cut, "skipped_steps": skip,
            "warning": warning}


def plot_lr_range(lrs, losses, suggestion: dict, out_png: str | os.PathLike) -> Path:
    """Write the loss-vs-LR plot (log x axis) with the suggested range shaded; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    ax.plot(lrs, losses, color="0.75", lw=1, label="batch loss")
    smooth = suggestion.get("smoothed")
    if smooth is not None:
        import numpy as np

        ax.plot(np.asarray(lrs)[:len(smooth)], smooth, color="C0", lw=2, label="smoothed")
    skipped = int(suggestion.get("skipped_steps") or 0)
    if skipped:
        ax.axvspan(lrs[0], lrs[skipped], color="0.5", alpha=0.1, label="ignored (noisy start)")
    ax.axvspan(suggestion["min_lr"], suggestion["max_lr"], color="C2", alpha=0.15,
               label=f"suggested {suggestion['min_lr']:.2g} .. {suggestion['max_lr']:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test")
    finite = [v for v in losses if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.95, min(max(finite), finite[0] * 1.6) * 1.05)
    ax.legend(loc="best")
    return _save_png(fig, out_png)


def print_progress(steps: int, every: int | None = None, stream=None) -> Callable:
    """An ``on_step(step, lr, loss)`` hook for :func:`lr_range_test` that reports progress on
    ``stream`` (default stderr): on a terminal one line rewritten in place, otherwise one
    line every ``every`` steps (default ``steps / 10``) and at the last step."""
    import sys

    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    every = max(1, int(every or steps // 10))

    def on_step(step: int, lr: float, loss: float) -> None:
        last = step + 1 >= steps
        if tty:
            stream.write(f"\rlr-find step {step + 1}/{steps}  lr {lr:.3g}  loss {loss:.4g}"
                         + ("\n" if last else ""))
        elif (step + 1) % every == 0 or last or step == 0:
            stream.write(f"lr-find step {step + 1}/{steps}  lr {lr:.3g}  loss {loss:.4g}\n")
        stream.flush()

    return on_step


def lr_range_test(model, dataset, out_png: str | os.PathLike | None = None,
                  start_lr: float = 1e-5, end_lr: float = 1.0, steps: int = 200,
                  momentum: float = 0.9, nesterov: bool = True,
                  diverge_factor: float = 4.0,
                  on_step: Callable[[int, float, float], None] | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """Run the LR range test: train ``model`` for ``steps`` batches while the rate grows
    exponentially from ``start_lr`` to ``end_lr``; stop early once the loss is not finite
    or its smoothed value (:func:`smooth_losses`) exceeds ``diverge_factor`` x its best.

    ``model``: an uncompiled Keras classifier (softmax output; its weights change).
    ``dataset``: an iterable of ``(images, int labels)`` batches; it is re-iterated as needed.
    ``on_step(step, lr, loss)`` is called after every batch; ``progress=True`` adds
    :func:`print_progress` (stderr), so a long test never runs silently.
    Returns :func:`suggest_lr_range`'s dict plus ``{"lrs": [...], "losses": [...],
    "steps"}`` and, when ``out_png`` is given, writes the loss-vs-LR plot there.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr}, {end_lr}")
    if int(steps) < 5:
        raise ValueError(f"the LR range test needs steps >= 5, got {steps}")
    import numpy as np

    from augmine.core.runtime import keras_backend

    to_numpy = keras_backend() != "tensorflow"
    hooks = [h for h in (on_step, print_progress(steps) if progress else None) if h]
    # Keras' own exponential schedule: lr = start * (end/start) ** (step / (steps - 1)).
    schedule = keras.optimizers.schedules.ExponentialDecay(
        start_lr, decay_steps=max(steps - 1, 1), decay_rate=end_lr / start_lr)
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=momentum, nesterov=nesterov),
                  loss="sparse_categorical_crossentropy")
    lrs: list[float] = []
    losses: list[float] = []
    avg, best, beta = 0.0, math.inf, 0.9  # the EMA of smooth_losses, kept as we go
    done = False
    while not done:
        n_before = len(losses)
        for x, y in dataset:
            step = len(losses)
            lr = start_lr * (end_lr / start_lr) ** (step / max(steps - 1, 1))
            if to_numpy:  # e.g. a tf.data pipeline feeding a JAX/PyTorch model
                x, y = np.asarray(x), np.asarray(y)
            loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
            lrs.append(lr)
            losses.append(loss)
            for hook in hooks:
                hook(step, lr, loss)
            if not math.isfinite(loss):
                break_now = True
            else:
                avg = beta * avg + (1 - beta) * loss
                smoothed = avg / (1 - beta ** (step + 1))
                best = min(best, smoothed)
                break_now = smoothed > diverge_factor * best
            if len(losses) >= steps or break_now:
                done = True
                break
        if len(losses) == n_before:
            raise ValueError("the LR range test got an empty dataset")
    result = suggest_lr_range(lrs, losses, diverge_factor=diverge_factor)
    result.update({"lrs": lrs, "losses": losses, "steps": len(losses)})
    if out_png is not None:
        plot_lr_range(lrs, losses, result, out_png)
    return result
