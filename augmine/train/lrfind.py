"""The LR range test (Smith 2017, section 3.3): :func:`lr_range_test` trains a model while
the rate grows exponentially and :func:`suggest_lr_range` reads ``min_lr``/``max_lr`` off the
loss curve; :func:`lr_find` (``augmine lr-find``) runs it for a config's model at one
phase's size and recipe."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

from augmine.core.atomic import write_json
from augmine.core.errors import AugmineError
from augmine.runs.config import load_config
from augmine.runs.factories import create_model


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

    from augmine.core.runtime import import_keras, keras_backend
    from augmine.model.schedule_plots import plot_lr_range

    keras = import_keras()
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


def lr_find(config, data_root, out_dir, phase: int = 1, steps: int = 200,
            start_lr: float = 1e-5, end_lr: float = 1.0, progress: bool = False) -> dict:
    """LR range test for a config's model at phase ``phase``'s size and recipe.

    ``config``: a YAML path, dict or TrainConfig; ``data_root``: the dataset folder.
    ``progress``: report every step on stderr (a line rewritten in place on a terminal,
    else one line per tenth of the steps). Writes ``out_dir/lr_find.png`` (loss vs LR) and
    ``out_dir/lr_find.json``; returns the result of
    :func:`lr_range_test` (``warning`` set when the loss never fell)
    plus ``png``/``json`` paths.
    """
    cfg = load_config(config)
    if not 1 <= phase <= len(cfg.phases):
        raise AugmineError(f"--phase {phase} is out of range; the config has "
                           f"{len(cfg.phases)} phases")
    if not (0 < start_lr < end_lr):
        raise AugmineError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 5:
        raise AugmineError(f"--steps {steps} is not a valid step count; use a whole number >= 5")
    from augmine.data.dataset import load_index
    from augmine.feed.feeds import pipeline_errors, train_dataset
    from augmine.core.runtime import import_keras

    index = load_index(data_root)
    ph = cfg.phases[phase - 1]
    keras = import_keras()
    keras.utils.set_random_seed(cfg.seed)
    model = create_model(cfg.model, index.num_classes, where=cfg.path or "config")
    feed = train_dataset(index, cfg.recipe(ph.recipe), ph.size, cfg.batch_size, seed=cfg.seed,
                         workers=cfg.workers, **ph.feed_options())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    opt = {k: v for k, v in cfg.optimizer.kwargs().items() if k in ("momentum", "nesterov")}
    with pipeline_errors():
        result = lr_range_test(model, feed, out_png=out_dir / "lr_find.png",
                               start_lr=start_lr, end_lr=end_lr, steps=int(steps),
                               progress=progress, **opt)
    result["png"] = str(out_dir / "lr_find.png")
    result["json"] = str(out_dir / "lr_find.json")
    write_json(out_dir / "lr_find.json", {k: v for k, v in result.items() if k != "smoothed"})
    return result
