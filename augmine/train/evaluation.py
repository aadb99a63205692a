"""Evaluation of a model, a checkpoint or a run on a dataset split.

Which checkpoint of a run is scored, and at which image and batch size, is decided by
:mod:`augmine.runs.checkpoints` (``resolve_checkpoint``, ``evaluation_settings``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from augmine.core.errors import AugmineError
from augmine.runs.checkpoints import (DEFAULT_BATCH_SIZE, evaluation_settings, load_checkpoint,
                                      resolve_checkpoint)


def evaluate_model(model, index, size: int, batch_size: int = DEFAULT_BATCH_SIZE,
                   split: str = "val", feed=None):
    """Predict ``split`` (default the validation split) at ``size`` px, without augmentation.

    ``feed``: an :func:`~augmine.feed.feeds.eval_dataset` of that split at that size to read
    (e.g. the one a phase validated on, with its decoded batches kept); default a new one.
    Returns ``(y_true (N,) int64, probs (N, C) float32)`` in the index's file order.
    """
    from augmine.feed.feeds import eval_dataset, pipeline_errors

    if feed is None:
        feed = eval_dataset(index, size, batch_size, split=split)
    with pipeline_errors():
        probs = model.predict(feed, verbose=0)
    probs = np.asarray(probs, dtype=np.float32)
    y_true = np.asarray(index.split(split).labels, dtype=np.int64)
    if len(probs) != len(y_true):
        raise AugmineError(f"evaluation returned {len(probs)} predictions for "
                           f"{len(y_true)} {split} images")
    return y_true, probs


def predict_checkpoint(path, index, size: int, batch_size: int = DEFAULT_BATCH_SIZE,
                       split: str = "val"):
    """:func:`evaluate_model` of the ``.keras`` checkpoint at ``path``, loaded into a model
    kept from an earlier prediction of this process with the same config when there is one
    (:func:`~augmine.train.compiled.reusable_model`: its traced predict step reused; the
    same predictions as a new load). Returns ``(y_true, probs)``."""
    from augmine.train.compiled import reusable_model

    return evaluate_model(reusable_model(path, compile=False), index, size, batch_size,
                          split=split)


def accuracy_summary(y_true, probs) -> dict[str, float]:
    """``{"top1", "top5", "loss", "num_samples"}`` from labels (N,) and probabilities (N, C)."""
    from augmine.analysis.metrics import top1, top_k_accuracy

    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    p_true = np.clip(probs[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    return {"top1": top1(y_true, probs),
            "top5": float(top_k_accuracy(y_true, probs, k=5)),
            "loss": float(-np.log(p_true).mean()) if len(y_true) else 0.0,
            "num_samples": int(len(y_true))}


def load_for_evaluation(run_or_checkpoint, data_root=None, size: int | None = None,
                        batch_size: int | None = None, which: str = "best",
                        skip_bad: bool = False, splits=("val",)):
    """``(model, index, info)`` for evaluating a run's checkpoint (or a ``.keras`` file).

    ``size``/``batch_size``/``data_root`` default to the run's (see
    :func:`augmine.runs.checkpoints.evaluation_settings` and ``resolve_checkpoint``). The
    ``splits`` are decoded first: bad images are left out (each logged) with ``skip_bad``,
    or when the run left them out, else one error suggests ``--skip-bad``. ``info``: ``{"checkpoint", "size",
    "batch_size", "data"}``; ``model`` is loaded without its optimizer.
    """
    from augmine.data.layouts import load_checked_index
    from augmine.runs.state import RunState

    ckpt, run, size = resolve_checkpoint(run_or_checkpoint, which, size)
    cfg = run.config if run is not None else None
    size, batch_size = evaluation_settings(cfg, size, batch_size)
    data_root = data_root or (cfg.data if cfg is not None else None)
    if not data_root:
        raise AugmineError(f"{ckpt}: no recorded dataset; pass --data PATH")
    recorded = run.read_state() if run is not None and run.has_state() else None
    state = recorded
    if state is None or cfg is None or not cfg.data or \
            Path(data_root).expanduser().resolve() != Path(cfg.data).expanduser().resolve():
        state = RunState()                # another dataset: the run's skipped files mean nothing
    index = load_checked_index(data_root, bool(skip_bad or state.skip_bad), state.skipped,
                               splits=list(splits))
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
