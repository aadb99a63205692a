"""Cyclic learning rates (Smith 2017) and the learning-rate range test.

Hand-written on purpose: no maintained library offers a cyclic learning rate for Keras 3
(TensorFlow Addons' ``CyclicalLearningRate`` reached end of life and does not work with
Keras 3 optimizers), so :class:`CyclicLR` implements the paper's three policies here as
an ordinary serializable ``keras.optimizers.schedules.LearningRateSchedule``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .runtime import import_keras

keras = import_keras()  # quiet TensorFlow logs (TF backend); augmine.schedules loads lazily

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


# --------------------------------------------------------------------------- LR range test

def suggest_lr_range(lrs, losses, smoothing: float = 0.9) -> dict[str, float]:
    """Suggest ``min_lr``/``max_lr`` from an LR range test (Smith 2017, section 3.3).

    ``lrs``, ``losses``: (S,) per-step learning rates (increasing) and batch losses.
    The losses are smoothed with a bias-corrected exponential moving average.
    ``max_lr`` = 3 x the rate where the smoothed loss falls fastest against log(lr), capped
    at the rate of the lowest smoothed loss (beyond it training diverges); ``min_lr`` =
    ``max_lr / 10``, raised to the first rate where the loss has clearly started to fall
    (5% of its total drop), and at most ``max_lr / 2``.
    Returns ``{"min_lr", "max_lr", "lr_at_min_loss", "steepest_lr"}`` plus the smoothed curve.
    """
    import numpy as np

    lrs = np.asarray(lrs, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    ok = np.isfinite(losses)
    lrs, losses = lrs[ok], losses[ok]
    if len(lrs) < 5:
        raise ValueError("the LR range test needs at least 5 finite losses")
    smooth = np.empty_like(losses)
    avg = 0.0
    for i, value in enumerate(losses):  # bias-corrected EMA, as in the fast.ai LR finder
        avg = smoothing * avg + (1 - smoothing) * value
        smooth[i] = avg / (1 - smoothing ** (i + 1))
    i_min = int(np.argmin(smooth))
    lr_at_min = float(lrs[i_min])
    grads = np.gradient(smooth, np.log(lrs))
    i_steep = int(np.argmin(grads[: max(i_min, 1) + 1]))
    steep = float(lrs[i_steep])
    max_lr = min(steep * 3.0, lr_at_min)
    drop = smooth[0] - 0.05 * (smooth[0] - smooth[i_min])
    started = np.nonzero(smooth[: i_min + 1] <= drop)[0]
    min_lr = max(max_lr / 10.0, float(lrs[started[0]]) if len(started) else 0.0)
    min_lr = min(min_lr, max_lr / 2.0)
    return {"min_lr": float(min_lr), "max_lr": float(max_lr), "lr_at_min_loss": lr_at_min,
            "steepest_lr": steep, "smoothed": smooth.tolist()}


def plot_lr_range(lrs, losses, suggestion: dict, out_png: str | os.PathLike) -> Path:
    """Write the loss-vs-LR plot (log x axis) with the suggested range shaded; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .atomic import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    ax.plot(lrs, losses, color="0.75", lw=1, label="batch loss")
    smooth = suggestion.get("smoothed")
    if smooth is not None:
        import numpy as np

        keep = np.isfinite(np.asarray(losses, dtype=float))
        ax.plot(np.asarray(lrs)[keep], smooth, color="C0", lw=2, label="smoothed")
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
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(out_png)


def lr_range_test(model, dataset, out_png: str | os.PathLike | None = None,
                  start_lr: float = 1e-5, end_lr: float = 1.0, steps: int = 200,
                  momentum: float = 0.9, nesterov: bool = True,
                  diverge_factor: float = 4.0) -> dict[str, Any]:
    """Run the LR range test: train ``model`` for ``steps`` batches while the rate grows
    exponentially from ``start_lr`` to ``end_lr``; stop early once the loss exceeds
    ``diverge_factor`` x its best.

    ``model``: an uncompiled Keras classifier (softmax output; its weights change).
    ``dataset``: an iterable of ``(images, int labels)`` batches; it is re-iterated as needed.
    Returns ``{"lrs": [...], "losses": [...], "min_lr", "max_lr", ...}`` and, when
    ``out_png`` is given, writes the loss-vs-LR plot there.
    """
    import keras

    # Keras' own exponential schedule: lr = start * (end/start) ** (step / steps).
    schedule = keras.optimizers.schedules.ExponentialDecay(
        start_lr, decay_steps=max(steps - 1, 1), decay_rate=end_lr / start_lr)
    model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=momentum, nesterov=nesterov),
                  loss="sparse_categorical_crossentropy")
    lrs: list[float] = []
    losses: list[float] = []
    best = math.inf
    done = False
    while not done:
        n_before = len(losses)
        for x, y in dataset:
            step = len(losses)
            lr = float(schedule(step))
            loss = float(model.train_on_batch(x, y, return_dict=True)["loss"])
            lrs.append(lr)
            losses.append(loss)
            if math.isfinite(loss):
                best = min(best, loss)
            if len(losses) >= steps or not math.isfinite(loss) or loss > diverge_factor * best:
                done = True
                break
        if len(losses) == n_before:
            raise ValueError("the LR range test got an empty dataset")
    result = suggest_lr_range(lrs, losses)
    result.update({"lrs": lrs, "losses": losses, "steps": len(losses)})
    if out_png is not None:
        plot_lr_range(lrs, losses, result, out_png)
    return result
