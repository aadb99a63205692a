"""The learning rate over a run, as numbers and as plots: :func:`lr_values` (any schedule,
vectorised where it can be), :func:`plot_lr_schedule` (a run's ``lr_schedule.png``) and
:func:`plot_lr_range` (the LR range test's loss-vs-LR plot, see :mod:`augmine.train.lrfind`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from augmine.core.runtime import import_keras
from augmine.model.schedules import keras_schedules


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
    keras = import_keras()
    idx = np.arange(steps)
    if isinstance(schedule, tuple(keras_schedules().values())):
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
