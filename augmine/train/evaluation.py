"""Evaluation of a model, a checkpoint or a run on a dataset split.

:func:`evaluation_settings` is the one rule for the image size and batch size a run is
evaluated at; :func:`resolve_checkpoint` the one rule for which checkpoint (the last
phase's best at the last phase's size, by default).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir

DEFAULT_SIZE = 64          # a bare .keras file with no run folder around it
DEFAULT_BATCH_SIZE = 256


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


def evaluate_model(model, index, size: int, batch_size: int = DEFAULT_BATCH_SIZE,
                   split: str = "val"):
    """Predict ``split`` (default the validation split) at ``size`` px, without augmentation.

    Returns ``(y_true (N,) int64, probs (N, C) float32)`` in the index's file order.
    """
    from augmine.feed.feeds import eval_dataset, pipeline_errors

    with pipeline_errors():
        probs = model.predict(eval_dataset(index, size, batch_size, split=split), verbose=0)
    probs = np.asarray(probs, dtype=np.float32)
    y_true = np.asarray(index.split(split).labels, dtype=np.int64)
    if len(probs) != len(y_true):
        raise AugmineError(f"evaluation returned {len(probs)} predictions for "
                           f"{len(y_true)} {split} images")
    return y_true, probs


def accuracy_summary(y_true, probs) -> dict[str, float]:
    """``{"top1", "top5", "loss", "num_samples"}`` from labels (N,) and probabilities (N, C)."""
    from augmine.analysis.mining import top_k_accuracy

    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    p_true = np.clip(probs[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    return {"top1": float(np.mean(probs.argmax(1) == y_true)) if len(y_true) else 0.0,
            "top5": float(top_k_accuracy(y_true, probs, k=5)),
            "loss": float(-np.log(p_true).mean()) if len(y_true) else 0.0,
            "num_samples": int(len(y_true))}


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
    here = (state.get("best_by_size") or {}).get(str(size))
    if here is None:
        return None
    sizes = {int(r["epoch"]): int(r["size"]) for r in run.read_history() if r.get("epoch")}
    overall = None
    if state.get("best_epoch") is not None and int(state["best_epoch"]) != int(here["epoch"]):
        epoch = int(state["best_epoch"])
        overall = {"epoch": epoch, "size": sizes.get(epoch),
                   "val_accuracy": float(state["best_val_accuracy"]),
                   "checkpoint": str(run.checkpoint("best"))}
    return {"checkpoint": str(run.checkpoint("best", size)), "epoch": int(here["epoch"]),
            "size": size, "val_accuracy": float(here["val_accuracy"]), "overall": overall}


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


def load_for_evaluation(run_or_checkpoint, data_root=None, size: int | None = None,
                        batch_size: int | None = None, which: str = "best",
                        skip_bad: bool = False, splits=("val",)):
    """``(model, index, info)`` for evaluating a run's checkpoint (or a ``.keras`` file).

    ``size``/``batch_size``/``data_root`` default to the run's (see
    :func:`evaluation_settings`, :func:`resolve_checkpoint`). The ``splits`` are decoded
    first: bad images are left out (each logged) with ``skip_bad``, or when the run left them
    out, else one error suggests ``--skip-bad``. ``info``: ``{"checkpoint", "size",
    "batch_size", "data"}``; ``model`` is loaded without its optimizer.
    """
    from augmine.data.dataset import load_checked_index
    from augmine.train.fit import load_checkpoint

    ckpt, run, size = resolve_checkpoint(run_or_checkpoint, which, size)
    cfg = run.config if run is not None else None
    size, batch_size = evaluation_settings(cfg, size, batch_size)
    data_root = data_root or (cfg.data if cfg is not None else None)
    if not data_root:
        raise AugmineError(f"{ckpt}: no recorded dataset; pass --data PATH")
    recorded = run.read_state() if run is not None and run.has_state() else {}
    state = recorded
    if cfg is None or not cfg.data or \
            Path(data_root).expanduser().resolve() != Path(cfg.data).expanduser().resolve():
        state = {}                        # another dataset: the run's skipped files mean nothing
    index = load_checked_index(data_root, bool(skip_bad or state.get("skip_bad")),
                               state.get("skipped") or (), splits=list(splits))
    if run is not None:
        run.check_classes(index, f"evaluate on the run's dataset (`augmine evaluate {run}` "
                          "without --data)", recorded)
    model = load_checkpoint(ckpt, compile=False)
    if model.output_shape[-1] != index.num_classes:
        raise AugmineError(f"{ckpt} predicts {model.output_shape[-1]} classes but {data_root} "
                           f"has {index.num_classes}; evaluate on the run's dataset")
    return model, index, {"checkpoint": str(ckpt), "size": size, "batch_size": batch_size,
                          "data": str(data_root)}


def evaluate_checkpoint(run_or_checkpoint, data_root=None, size: int | None = None,
                        batch_size: int | None = None, which: str = "best",
                        skip_bad: bool = False) -> dict:
    """Top-1/top-5 accuracy and loss of a run's checkpoint (or a ``.keras`` file) on val
    (loaded by :func:`load_for_evaluation`). Returns ``{"top1", "top5", "loss",
    "num_samples", "checkpoint", "size", "batch_size", "data"}``.
    """
    model, index, info = load_for_evaluation(run_or_checkpoint, data_root, size, batch_size,
                                             which, skip_bad)
    result = accuracy_summary(*evaluate_model(model, index, info["size"], info["batch_size"]))
    result.update(info)
    return result
