"""Evaluation of a model, a checkpoint or a run on a dataset split, and the models kept per
process so that the arms and rounds of one command reuse their traced train and predict
steps (trace once).

Which checkpoint of a run is scored, and at which image and batch size, is decided by
:mod:`augmine.runs.factories` (``resolve_checkpoint``, ``evaluation_settings``).
"""

from __future__ import annotations

import hashlib
import json
import weakref
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from augmine.core.errors import AugmineError
from augmine.core.runtime import import_keras, keras_backend
from augmine.runs.factories import (DEFAULT_BATCH_SIZE, evaluation_settings, load_checkpoint,
                                    resolve_checkpoint)


# =========================================================================== compiled
# Models kept per process, so that the arms and rounds of one command reuse their traced
# train and predict steps (trace once).
#
# Keras keeps a model's train and predict functions on the model object; on TensorFlow each is
# a ``tf.function``, traced once per input signature (seconds on a CPU, tens of seconds on a
# GPU), and a model loaded anew traces both again. :func:`reusable_model` loads a checkpoint's
# weights and optimizer state (step, slots) into a model loaded earlier in this process from a
# checkpoint with the same ``config.json`` (architecture, loss, metrics, optimizer and its
# learning-rate schedule) instead of loading a new one: every variable then holds what a new
# load holds, and the kept functions are reused. :func:`same_steps` keeps a reused train
# function only while what its trace baked in (the optimizer object and its config with the
# learning-rate schedule, the trainable variables, the loss hook) is unchanged, and makes a
# new one otherwise, so a reused step is the same computation as a new one;
# :func:`build_step_state` builds what Keras would otherwise build inside the first trace
# (which made every fit trace its train step twice).
#
# :func:`kept_new_model` does the same for a model just built from a config (``recipe
# compare``'s arms and seeds): the new model's initial weights, seed states and optimizer
# variables are assigned into the kept one.
#
# TensorFlow outside a ``tf.distribute`` strategy only: on JAX and PyTorch, and under a
# strategy, every call loads a new model (as before).

KEEP = 4                      # models kept at most (the least recently used goes first)


@dataclass
class _Kept:
    model: Any
    optimizer: Any            # the model's optimizer when loaded (None: loaded uncompiled)
    schedule: Any             # its learning-rate schedule when loaded
    trainable: list[str]      # its trainable variables when loaded


_kept: OrderedDict[tuple, _Kept] = OrderedDict()
# model -> (its train function, the step_signature it was traced with) after a fit began
_traced_with: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tensorflow_without_strategy() -> bool:
    if keras_backend() != "tensorflow":
        return False
    from augmine.feed.tf_backend import no_strategy

    return no_strategy()


def reuses_models() -> bool:
    """Whether models are kept and reused here: the TensorFlow backend, no strategy."""
    return _tensorflow_without_strategy()


def _key(path: Path, compile: bool) -> tuple | None:
    """What a model loaded from ``path`` is built from; None when the file does not read
    (:func:`~augmine.runs.factories.load_checkpoint` then says why)."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    policy = import_keras().config.dtype_policy().name
    return hashlib.sha256(config).hexdigest(), bool(compile), policy


def _unchanged(kept: _Kept) -> bool:
    """Whether the kept model is still as loaded: its optimizer, its trainable variables and
    no loss hook of its own (a distillation's)."""
    model = kept.model
    return (getattr(model, "optimizer", None) is kept.optimizer and
            "compute_loss" not in vars(model) and
            [v.path for v in model.trainable_variables] == kept.trainable)


def reusable_model(path, compile: bool = True):
    """The ``.keras`` checkpoint at ``path`` as a model (with its optimizer unless
    ``compile=False``), like :func:`~augmine.runs.factories.load_checkpoint`, but in a
    model of the same ``config.json`` loaded before in this process when there is one (its
    weights and optimizer state loaded, its learning-rate schedule put back), so its train
    and predict steps are not traced again. The model is shared: the next call for a
    checkpoint of the same config loads other weights into it, so use it before that, and
    never change what it is (freeze layers, swap its optimizer, hook its loss): load such a
    model with ``load_checkpoint``. Where :func:`reuses_models` is False, a new model."""
    path = Path(path)
    key = _key(path, compile) if reuses_models() else None
    if key is None:
        return load_checkpoint(path, compile=compile)
    kept = _kept.pop(key, None)
    if kept is not None and _unchanged(kept):
        try:
            kept.model.load_weights(path)
        except Exception:      # noqa: BLE001  (half loaded: dropped; a new load says why)
            kept = None
        else:
            if compile:
                kept.model.optimizer.learning_rate = kept.schedule
            _kept[key] = kept
            return kept.model
    model = load_checkpoint(path, compile=compile)
    optimizer = model.optimizer if compile else None
    schedule = _schedule_of(optimizer) if compile else None
    if compile and schedule is None:
        return model       # a constant rate that a schedule replaces cannot be put back
    _keep(key, _Kept(model, optimizer, schedule, [v.path for v in model.trainable_variables]))
    return model


def _schedule_of(optimizer):
    """``optimizer``'s learning-rate schedule as a new object, or None when its rate is a
    constant or it has none of its own (a loss-scale wrapper)."""
    keras = import_keras()
    schedule = keras.saving.deserialize_keras_object(optimizer.get_config().get("learning_rate"))
    return schedule if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) \
        else None


def _keep(key, kept: _Kept) -> None:
    """Keep ``kept`` under ``key``, dropping the least recently used beyond :data:`KEEP`."""
    _kept[key] = kept
    while len(_kept) > KEEP:
        _kept.popitem(last=False)


def kept_new_model(model, key: str):
    """``model`` (just built and compiled from a config, not trained: its initial weights and
    a new optimizer) or, where a model built earlier in this process for the same ``key``
    (what the config says of the architecture, loss, optimizer and schedule) is kept and
    matches it (layers, variables, optimizer and its config), that model holding exactly
    ``model``'s state: its weights and seed states assigned, the optimizer's variables set
    to a new optimizer's (``model``'s, built), the metrics reset. Its traced train and
    predict steps are then reused (``recipe compare``'s arms and seeds). Shared like
    :func:`reusable_model`'s models; where :func:`reuses_models` is False, ``model``."""
    if not reuses_models() or model.optimizer is None:
        return model
    schedule = _schedule_of(model.optimizer)
    if schedule is None:
        return model           # a constant rate that a callback may change: not kept
    if not model.optimizer.built:       # a new optimizer's variables (as Keras builds it)
        model.optimizer.build(model.trainable_variables)
    key = ("built", key, import_keras().config.dtype_policy().name)
    kept = _kept.pop(key, None)
    if kept is not None and _unchanged(kept) and _same_build(kept.model, model):
        for target, source in [*zip(kept.model.variables, model.variables),
                               *zip(kept.model.optimizer.variables, model.optimizer.variables)]:
            target.assign(source)
        kept.model.optimizer.learning_rate = schedule
        kept.model.reset_metrics()
        _kept[key] = kept
        return kept.model
    _keep(key, _Kept(model, model.optimizer, schedule,
                     [v.path for v in model.trainable_variables]))
    return model


def _same_build(kept, new) -> bool:
    """Whether ``kept`` is built like ``new``: the same classes of model, layers and
    optimizer, variables of the same shapes and dtypes, the same optimizer config."""
    def shapes(variables):
        return [(tuple(v.shape), str(v.dtype)) for v in variables]

    def optimizer(model):
        config = dict(model.optimizer.get_config())
        config.pop("name", None)
        return type(model.optimizer), json.dumps(config, sort_keys=True, default=str)

    return (type(kept) is type(new) and
            [type(layer) for layer in kept.layers] == [type(layer) for layer in new.layers] and
            shapes(kept.variables) == shapes(new.variables) and optimizer(kept) == optimizer(new)
            and shapes(kept.optimizer.variables) == shapes(new.optimizer.variables))


def forget_models() -> None:
    """Drop every kept model (the next :func:`reusable_model` loads anew)."""
    _kept.clear()


def build_step_state(model, train_feed) -> None:
    """Create the optimizer's and the compiled metrics' variables before the fit, on
    TensorFlow outside a distribution strategy, where Keras creates them inside the first
    trace of the train step: a ``tf.function`` that creates variables is traced a second
    time, so every fit traced its train step twice on the same input shape. The optimizer
    is built on the trainable variables (as Keras builds it); the metrics are built on one
    batch of zeros shaped like ``train_feed``'s and reset (every epoch starts with reset
    metrics anyway). Changes no result; elsewhere Keras builds both before tracing."""
    if not _tensorflow_without_strategy():
        return
    from augmine.feed.tf_backend import zero_batch

    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    batch = zero_batch(train_feed)
    if batch is None or len(model.outputs) != 1 or \
            all(getattr(m, "built", True) for m in model.metrics):
        return
    x, y = batch
    model.compute_metrics(x, y, import_keras().ops.zeros((1, *model.output_shape[1:])))
    model.reset_metrics()


def step_signature(model) -> str:
    """What a trace of ``model``'s train step bakes in besides the model's architecture: its
    optimizer (the object, and its config with the learning-rate schedule), its trainable
    variables, its loss hook and how steps run."""
    optimizer = model.optimizer
    loss = model.compute_loss
    return json.dumps([id(optimizer), optimizer.get_config() if optimizer else None,
                       [v.path for v in model.trainable_variables],
                       id(getattr(loss, "__func__", loss)), model.steps_per_execution,
                       str(model.jit_compile), model.run_eagerly], sort_keys=True, default=str)


def same_steps():
    """A Keras callback (last in a fit's list, after those that set the schedule) that, when
    the fit begins, makes a new train function if the model's was traced in an earlier fit
    with another :func:`step_signature` (e.g. an earlier round's learning-rate schedule), or
    was replaced since (what it was traced with is then unknown)."""
    keras = import_keras()

    class SameSteps(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            model, signature = self.model, step_signature(self.model)
            before = _traced_with.get(model)
            if before is not None and (before[0]() is not model.train_function or
                                       before[1] != signature):
                model.make_train_function(force=True)
            _traced_with[model] = (weakref.ref(model.train_function), signature)

    return SameSteps()


# =========================================================================== evaluation

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
    (:func:`~augmine.train.evaluation.reusable_model`: its traced predict step reused; the
    same predictions as a new load). Returns ``(y_true, probs)``."""

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
    :func:`augmine.runs.factories.evaluation_settings` and ``resolve_checkpoint``). The
    ``splits`` are decoded first: bad images are left out (each logged) with ``skip_bad``,
    or when the run left them out, else one error suggests ``--skip-bad``. ``info``: ``{"checkpoint", "size",
    "batch_size", "data"}``; ``model`` is loaded without its optimizer.
    """
    from augmine.data.dataset import load_checked_index
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
