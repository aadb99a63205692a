"""Learning-rate schedules: cyclic, phase-aligned cyclic and piecewise-linear (one-cycle).

Hand-written on purpose: no maintained library offers a cyclic learning rate for Keras 3
(TensorFlow Addons' ``CyclicalLearningRate`` reached end of life and does not work with
Keras 3 optimizers), so ``CyclicLR`` implements the paper's three policies here as an
ordinary serializable ``keras.optimizers.schedules.LearningRateSchedule``;
``PhaseCyclicLR`` is the same triangle over explicit segments (cycles aligned to the
training phases) and ``PiecewiseLinearLR`` the linear one-cycle policy, which Keras lacks
(it only has ``PiecewiseConstantDecay``). Cosine decay with warm-up and the cosine
one-cycle policy are Keras' own ``CosineDecay``. All schedules use ``keras.ops`` only, so
they run on every backend; :func:`augmine.runs.factories.create_schedule` builds the one a
config names.

Importing this module does not import Keras: the three classes are made (subclassing
``LearningRateSchedule``) and registered as ``augmine>Name`` on first use, i.e. the first
``from augmine.model.schedules import CyclicLR`` or :func:`keras_schedules` call (loading a
saved model that holds one needs that; :func:`augmine.runs.factories.load_checkpoint`
does it). The cycle arithmetic (:func:`phase_cycles`, :func:`cyclic_lr_value`) is plain
Python.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

MODES = ("triangular", "triangular2", "exp_range")


# _CyclicLR, _PhaseCyclicLR, _PiecewiseLinearLR: the bodies of the Keras classes CyclicLR,
# PhaseCyclicLR, PiecewiseLinearLR that keras_schedules() makes (this module imports no Keras).

class _CyclicLR:
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

    def __init__(self, min_lr: float, max_lr: float, half_cycle: int, mode: str,
                 gamma: float, name: str = "CyclicLR"):
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


def cyclic_lr_value(step: float, min_lr: float, max_lr: float, half_cycle: int, mode: str,
                    gamma: float) -> float:
    """The same formula as :class:`CyclicLR` in plain Python (for plots and reports)."""
    cycle = math.floor(1 + step / (2 * half_cycle))
    x = abs(step / half_cycle - 2 * cycle + 1)
    scale = {"triangular": 1.0, "triangular2": 1.0 / 2 ** (cycle - 1),
             "exp_range": gamma ** step}[mode]
    return min_lr + (max_lr - min_lr) * max(0.0, 1.0 - x) * scale


# --------------------------------------------------------------------------- phase-aligned cycles

def phase_parts(phases) -> list[tuple[int, int | None, int | None]]:
    """``phases`` items (step counts or ``(steps_per_epoch, epochs)`` pairs) as
    ``(total_steps, steps_per_epoch or None, epochs or None)``; a one-line ValueError for a
    bad one."""
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
    parts = phase_parts(phases)
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


def phase_cycle_segments(phases, min_lr: float, max_lr: float, mode: str, gamma: float,
                         cycles_per_phase=None,
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


class _PhaseCyclicLR:
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


class _PiecewiseLinearLR:
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


# --------------------------------------------------------------------------- the Keras classes

_BODIES = {"CyclicLR": _CyclicLR, "PhaseCyclicLR": _PhaseCyclicLR,
           "PiecewiseLinearLR": _PiecewiseLinearLR}


@functools.cache
def keras_schedules() -> dict[str, type]:
    """``{"CyclicLR": class, "PhaseCyclicLR": class, "PiecewiseLinearLR": class}``: the Keras
    ``LearningRateSchedule`` classes, made and registered for Keras serialization (as
    ``augmine>Name``) on the first call; later calls return the same classes."""
    from augmine.core.runtime import import_keras

    keras = import_keras()  # quiet TensorFlow logs (TF backend)
    classes = {}
    for name, body in _BODIES.items():
        cls = type(name, (body, keras.optimizers.schedules.LearningRateSchedule),
                   {"__module__": __name__, "__qualname__": name, "__doc__": body.__doc__})
        classes[name] = keras.saving.register_keras_serializable(package="augmine",
                                                                 name=name)(cls)
    return classes


def __getattr__(name: str):
    if name in _BODIES:
        cls = keras_schedules()[name]
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
