"""Phased training driven by a training config: progressive resizing, cyclic LR, resume.

A training config (YAML, kept in ``recipes/`` next to the augmentation recipes) names the
model, the optimizer, the schedule and the phases (image size, epochs, recipe). One model
trains through every phase (its input is ``(None, None, 3)``), with one optimizer whose
``iterations`` count keeps the cyclic schedule going across phases, resumes and mining
rounds.

Run folder (see the team contract): ``config.yaml`` (resolved, with ``data:``),
``state.json``, ``history.csv`` (one row per epoch), ``checkpoints/last.keras`` and
``best.keras`` (written atomically), ``tensorboard/``, ``reports/phase-N/``.

Resume: after every epoch the trainer writes ``last.keras`` (weights + optimizer state,
including the step), then ``best.keras`` when val accuracy improved, then ``history.csv``,
then ``state.json`` last, so ``state.json`` is the commit point. ``--resume`` loads
``last.keras``, drops history rows newer than ``state.json`` and continues ``fit`` at the
recorded phase and epoch (``initial_epoch``) and schedule step. This is Keras'
``BackupAndRestore`` idea written for a multi-phase run: ``BackupAndRestore`` only knows one
``fit`` call and keeps its own backup outside the run's checkpoints.

Nothing heavy is imported at module top: TensorFlow/Keras load inside the functions.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from .atomic import atomic_path, write_json, write_text
from .errors import AugmineError
from .runtime import import_keras

log = logging.getLogger("augmine")

HISTORY_COLUMNS = ("stage", "phase", "size", "epoch", "lr", "loss", "accuracy",
                   "val_loss", "val_accuracy")
# Same names as augmine.schedules.MODES (repeated so config checks need no Keras import).
SCHEDULE_MODES = ("triangular", "triangular2", "exp_range")
STRATEGIES = ("auto", "mirrored", "default")

_OPTIMIZER_ARGS = {
    "sgd": ("momentum", "nesterov", "weight_decay", "clipnorm", "global_clipnorm"),
    "adam": ("beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay", "clipnorm",
             "global_clipnorm"),
    "adamw": ("beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay", "clipnorm",
              "global_clipnorm"),
    "rmsprop": ("rho", "momentum", "epsilon", "centered", "weight_decay", "clipnorm",
                "global_clipnorm"),
}
_MODEL_KEYS = ("width", "growth_rate", "blocks", "layers_per_block", "compression",
               "dropout", "weight_decay")
_SCHEDULE_KEYS = ("mode", "min_lr", "max_lr", "half_cycle", "gamma")
_PHASE_KEYS = ("size", "epochs", "recipe")
_MINING_KEYS = ("policy", "k", "threshold", "z", "factor", "cap", "epochs", "recipe",
                "scheme", "class_weight")
_TOP_KEYS = ("name", "description", "model", "batch_size", "eval_batch_size", "optimizer",
             "schedule", "seed", "mixed_precision", "strategy", "workers", "phases",
             "mining", "data")


# --------------------------------------------------------------------------- config

@dataclass
class Phase:
    """One training phase: image ``size`` (px), ``epochs`` and the ``recipe`` file (abs path)."""

    size: int
    epochs: int
    recipe: str


@dataclass
class TrainConfig:
    """A validated training config (see :func:`load_config`)."""

    name: str
    phases: list[Phase]
    model: dict = field(default_factory=dict)
    batch_size: int = 320
    eval_batch_size: int | None = None
    optimizer: dict = field(default_factory=lambda: {"name": "sgd", "momentum": 0.9,
                                                     "nesterov": True})
    schedule: dict = field(default_factory=lambda: {"mode": "triangular", "min_lr": 0.001,
                                                    "max_lr": 0.05, "half_cycle": 2000})
    seed: int = 0
    mixed_precision: str = "auto"
    strategy: str = "auto"
    workers: int | None = None
    mining: dict = field(default_factory=dict)
    description: str = ""
    data: str | None = None
    path: str | None = None

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def to_dict(self) -> dict:
        """The YAML-ready dict (recipes as absolute paths)."""
        d = {"name": self.name, "description": self.description, "model": dict(self.model),
             "batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
             "optimizer": dict(self.optimizer), "schedule": dict(self.schedule),
             "seed": self.seed, "mixed_precision": self.mixed_precision,
             "strategy": self.strategy, "workers": self.workers,
             "phases": [{"size": p.size, "epochs": p.epochs, "recipe": p.recipe}
                        for p in self.phases],
             "mining": dict(self.mining)}
        if self.data is not None:
            d["data"] = self.data
        return d


def _check_keys(d: dict, allowed, where: str) -> None:
    for key in d:
        if key not in allowed:
            close = get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(allowed)}"
            raise AugmineError(f"{where}: unknown key {key!r}; {hint}")


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AugmineError(f"{where}: expected a mapping (key: value lines), got "
                           f"{type(value).__name__}")
    return dict(value)


def _int(value, where: str, minimum: int = 1, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            int(value) != value or value < minimum:
        raise AugmineError(f"{where}: {value!r} is not a valid {what or 'value'}; "
                           f"use a whole number >= {minimum}")
    return int(value)


def _float(value, where: str, minimum: float = 0.0, strict: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and \
        math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        raise AugmineError(f"{where}: {value!r} is not valid; use a number "
                           f"{'>' if strict else '>='} {minimum}")
    return float(value)


def _resolve_phase_recipe(name, base_dir: Path | None, where: str) -> str:
    """A recipe path: relative to the config file first, then a name in ``recipes/``."""
    if not isinstance(name, str) or not name.strip():
        raise AugmineError(f"{where}: 'recipe' must name a recipe file, e.g. light.yaml")
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).is_file():
        path = base_dir / path
    elif not path.is_file():
        from .recipes import resolve_recipe

        try:
            path = Path(resolve_recipe(name))
        except AugmineError as exc:
            raise AugmineError(f"{where}: recipe {name!r} not found next to the config or in "
                               f"recipes/ ({exc})") from None
        if not path.is_file():
            raise AugmineError(f"{where}: recipe file {path} does not exist; fix the name or "
                               "create the recipe")
    from .recipes import load_recipe

    load_recipe(path)  # full validation now, before any training starts
    return str(path.resolve())


def load_config(source, base_dir: str | os.PathLike | None = None,
                check_recipes: bool = True) -> TrainConfig:
    """Read and validate a training config.

    ``source``: a YAML path, or an already parsed dict (``base_dir`` then resolves relative
    recipe paths). Every problem raises a one-line :class:`AugmineError` naming the file and
    key (unknown keys get a "did you mean"), before anything trains.
    """
    import yaml

    where = "config"
    if isinstance(source, TrainConfig):
        return source
    if isinstance(source, dict):
        raw = copy.deepcopy(source)
        base = Path(base_dir) if base_dir is not None else None
        path = None
    else:
        path = Path(source).expanduser()
        where = str(path)
        if not path.is_file():
            raise AugmineError(f"{path}: training config not found; check the path "
                               "(shipped configs live in recipes/)")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" line {mark.line + 1}" if mark is not None else ""
            raise AugmineError(f"{path}:{at} is not valid YAML ({getattr(exc, 'problem', exc)})")
        base = Path(base_dir) if base_dir is not None else path.parent
    if not isinstance(raw, dict):
        raise AugmineError(f"{where}: a training config is a mapping with keys like name, "
                           "model, phases")
    _check_keys(raw, _TOP_KEYS, where)
    if "phases" not in raw or not raw["phases"]:
        raise AugmineError(f"{where}: 'phases' is missing or empty; add at least one "
                           "{size, epochs, recipe} entry")

    model = _mapping(raw.get("model"), f"{where}: model")
    _check_keys(model, _MODEL_KEYS, f"{where}: model")
    blocks = _int(model.get("blocks", 5), f"{where}: model.blocks", 1, "block count")
    for key in ("width", "growth_rate", "layers_per_block"):
        if key in model:
            _int(model[key], f"{where}: model.{key}", 1, key)
    for key in ("dropout", "weight_decay"):
        if key in model:
            _float(model[key], f"{where}: model.{key}")
    if "dropout" in model and model["dropout"] >= 1:
        raise AugmineError(f"{where}: model.dropout {model['dropout']} must be below 1")
    if "compression" in model and not 0 < _float(model["compression"],
                                                 f"{where}: model.compression") <= 1:
        raise AugmineError(f"{where}: model.compression must be in (0, 1]")

    optimizer = {"name": "sgd", "momentum": 0.9, "nesterov": True}
    opt_raw = _mapping(raw.get("optimizer"), f"{where}: optimizer")
    opt_name = str(opt_raw.get("name", "sgd")).lower()
    if opt_name not in _OPTIMIZER_ARGS:
        close = get_close_matches(opt_name, list(_OPTIMIZER_ARGS), n=1)
        hint = f"did you mean {close[0]!r}?" if close else \
            f"choose one of {', '.join(_OPTIMIZER_ARGS)}"
        raise AugmineError(f"{where}: optimizer.name {opt_name!r} is not supported; {hint}")
    if opt_name != "sgd":
        optimizer = {"name": opt_name}
    _check_keys({k: v for k, v in opt_raw.items() if k != "name"},
                _OPTIMIZER_ARGS[opt_name], f"{where}: optimizer ({opt_name})")
    optimizer.update(opt_raw)
    optimizer["name"] = opt_name

    schedule = {"mode": "triangular", "min_lr": 0.001, "max_lr": 0.05, "half_cycle": 2000}
    sched_raw = _mapping(raw.get("schedule"), f"{where}: schedule")
    _check_keys(sched_raw, _SCHEDULE_KEYS, f"{where}: schedule")
    schedule.update(sched_raw)
    if schedule["mode"] not in SCHEDULE_MODES:
        close = get_close_matches(str(schedule["mode"]), SCHEDULE_MODES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"choose {', '.join(SCHEDULE_MODES)}"
        raise AugmineError(f"{where}: schedule.mode {schedule['mode']!r} is unknown; {hint}")
    lo = _float(schedule["min_lr"], f"{where}: schedule.min_lr", 0.0, strict=True)
    hi = _float(schedule["max_lr"], f"{where}: schedule.max_lr", 0.0, strict=True)
    if lo > hi:
        raise AugmineError(f"{where}: schedule.min_lr {lo} is above max_lr {hi}; swap them")
    _int(schedule["half_cycle"], f"{where}: schedule.half_cycle", 1, "step count")
    if "gamma" in schedule:
        _float(schedule["gamma"], f"{where}: schedule.gamma", 0.0, strict=True)

    if not isinstance(raw["phases"], list):
        raise AugmineError(f"{where}: 'phases' must be a list of {{size, epochs, recipe}}")
    min_size = 2 ** (blocks - 1)
    phases = []
    for i, ph in enumerate(raw["phases"], 1):
        pw = f"{where}: phases[{i}]"
        ph = _mapping(ph, pw)
        _check_keys(ph, _PHASE_KEYS, pw)
        for key in ("size", "epochs"):
            if key not in ph:
                raise AugmineError(f"{pw}: missing {key!r}")
        size = _int(ph["size"], f"{pw}.size", min_size, f"image size (a {blocks}-block "
                                                         f"DenseNet needs >= {min_size} px)")
        if size > 2048:
            raise AugmineError(f"{pw}.size: {size} px is too large; use at most 2048")
        epochs = _int(ph["epochs"], f"{pw}.epochs", 1, "epoch count")
        recipe = ph.get("recipe", "none")
        recipe = _resolve_phase_recipe(recipe, base, pw) if check_recipes else str(recipe)
        phases.append(Phase(size=size, epochs=epochs, recipe=recipe))

    mining = _mapping(raw.get("mining"), f"{where}: mining")
    _check_keys(mining, _MINING_KEYS, f"{where}: mining")
    if "epochs" in mining:
        _int(mining["epochs"], f"{where}: mining.epochs", 1, "epoch count")
    if mining.get("recipe") and check_recipes:
        mining["recipe"] = _resolve_phase_recipe(mining["recipe"], base, f"{where}: mining")

    mp = raw.get("mixed_precision", "auto")
    mp = {True: "true", False: "false"}.get(mp, str(mp).lower())
    if mp not in ("auto", "true", "false"):
        raise AugmineError(f"{where}: mixed_precision must be auto, true or false, got {mp!r}")
    strategy = str(raw.get("strategy", "auto")).lower()
    if strategy not in STRATEGIES:
        raise AugmineError(f"{where}: strategy {strategy!r} is unknown; choose "
                           f"{', '.join(STRATEGIES)}")
    workers = raw.get("workers")
    if workers is not None:
        workers = _int(workers, f"{where}: workers", 0, "worker count")
    eval_bs = raw.get("eval_batch_size")
    if eval_bs is not None:
        eval_bs = _int(eval_bs, f"{where}: eval_batch_size", 1, "batch size")
    return TrainConfig(
        name=str(raw.get("name") or (path.stem if path else "run")), phases=phases,
        model=model, batch_size=_int(raw.get("batch_size", 320), f"{where}: batch_size", 1,
                                     "batch size"),
        eval_batch_size=eval_bs, optimizer=optimizer, schedule=schedule,
        seed=_int(raw.get("seed", 0), f"{where}: seed", 0, "seed"), mixed_precision=mp,
        strategy=strategy, workers=workers, mining=mining,
        description=str(raw.get("description") or ""),
        data=str(raw["data"]) if raw.get("data") else None,
        path=str(path.resolve()) if path else None)


# --------------------------------------------------------------------------- runtime pieces

def make_strategy(name: str = "auto"):
    """A ``tf.distribute`` strategy.

    ``auto``: MirroredStrategy over all local GPUs when there is one, else the default
    (single-device) strategy; ``mirrored``: MirroredStrategy over all GPUs, or over all
    logical CPU devices when there is no GPU; ``default``: no distribution.
    """
    from .runtime import import_tensorflow

    tf = import_tensorflow()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and not gpus):
        return tf.distribute.get_strategy()
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    if len(devices) == 1 and not gpus:
        return tf.distribute.get_strategy()
    cross = None if gpus else tf.distribute.ReductionToOneDevice()
    return tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=cross)


def use_mixed_precision(setting: str = "auto") -> bool:
    """Whether to train in ``mixed_float16``: ``auto`` means "when a GPU is present"."""
    if setting in ("true", True):
        return True
    if setting in ("false", False):
        return False
    from .runtime import import_tensorflow

    return bool(import_tensorflow().config.list_physical_devices("GPU"))


@contextlib.contextmanager
def _dtype_policy(mixed: bool):
    keras = import_keras()

    before = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def make_optimizer(cfg: TrainConfig):
    """The configured Keras optimizer driven by a :class:`~augmine.schedules.CyclicLR`."""
    keras = import_keras()

    from .schedules import CyclicLR

    schedule = CyclicLR(**cfg.schedule)
    kwargs = {k: v for k, v in cfg.optimizer.items() if k != "name"}
    cls = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam,
           "adamw": keras.optimizers.AdamW, "rmsprop": keras.optimizers.RMSprop}[
        cfg.optimizer["name"]]
    return cls(learning_rate=schedule, **kwargs)


def build_model(cfg: TrainConfig, num_classes: int):
    """The config's DenseNet, compiled with its optimizer, sparse cross-entropy and accuracy."""
    from .model import build_densenet

    model = build_densenet(num_classes, **cfg.model)
    model.compile(optimizer=make_optimizer(cfg), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def load_checkpoint(path: str | os.PathLike, compile: bool = True):
    """Load a ``.keras`` checkpoint written by the trainer (with its optimizer state)."""
    path = Path(path)
    if not path.is_file():
        raise AugmineError(f"{path}: checkpoint not found; train first or check the run folder")
    keras = import_keras()

    from . import schedules  # noqa: F401  (registers CyclicLR for deserialisation)

    try:
        return keras.saving.load_model(path, compile=compile)
    except (ValueError, OSError) as exc:
        raise AugmineError(f"{path}: cannot load this checkpoint ({str(exc).splitlines()[0]})")


def current_lr(model) -> float:
    """The optimizer's learning rate at its current step."""
    from keras import ops

    return float(ops.convert_to_numpy(model.optimizer.learning_rate))


def _step(model) -> int:
    from keras import ops

    return int(ops.convert_to_numpy(model.optimizer.iterations))  # also a MirroredVariable


# --------------------------------------------------------------------------- data hooks

def _train_ds(index, recipe, size, batch_size, plan=None, seed=None, workers=None):
    from .pipeline import train_dataset

    return train_dataset(index, recipe, size, batch_size, plan=plan, seed=seed, workers=workers)


def _eval_ds(index, size, batch_size, split="val"):
    from .pipeline import eval_dataset

    return eval_dataset(index, size, batch_size, split=split)


def evaluate_model(model, index, size: int, batch_size: int = 256, split: str = "val"):
    """Predict ``split`` (default the validation split) at ``size`` px, without augmentation.

    Returns ``(y_true (N,) int64, probs (N, C) float32)`` in the index's file order.
    """
    import numpy as np

    from .pipeline import pipeline_errors

    with pipeline_errors():
        probs = model.predict(_eval_ds(index, size, batch_size, split), verbose=0)
    probs = np.asarray(probs, dtype=np.float32)
    y_true = np.asarray(index.split(split).labels, dtype=np.int64)
    if len(probs) != len(y_true):
        raise AugmineError(f"evaluation returned {len(probs)} predictions for "
                           f"{len(y_true)} {split} images")
    return y_true, probs


def accuracy_summary(y_true, probs) -> dict[str, float]:
    """``{"top1", "top5", "loss", "num_samples"}`` from labels (N,) and probabilities (N, C)."""
    import numpy as np

    from .mining import top_k_accuracy

    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    p_true = np.clip(probs[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    return {"top1": float(np.mean(probs.argmax(1) == y_true)) if len(y_true) else 0.0,
            "top5": float(top_k_accuracy(y_true, probs, k=5)),
            "loss": float(-np.log(p_true).mean()) if len(y_true) else 0.0,
            "num_samples": int(len(y_true))}


# --------------------------------------------------------------------------- run folder

def _paths(run_dir: Path) -> dict[str, Path]:
    return {"config": run_dir / "config.yaml", "state": run_dir / "state.json",
            "history": run_dir / "history.csv", "last": run_dir / "checkpoints" / "last.keras",
            "best": run_dir / "checkpoints" / "best.keras", "tb": run_dir / "tensorboard"}


def read_state(run_dir: str | os.PathLike) -> dict:
    """The run's ``state.json`` (raises a one-line error when the folder holds no run)."""
    path = Path(run_dir) / "state.json"
    if not path.is_file():
        raise AugmineError(f"{run_dir}: no state.json, so this is not a training run folder; "
                           "start one with `augmine train CONFIG --run-dir DIR`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AugmineError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})")


def read_history(run_dir: str | os.PathLike) -> list[dict]:
    """Rows of ``history.csv`` as dicts (strings as written); [] when there is none yet."""
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_history(run_dir: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(run_dir / "history.csv", buf.getvalue())


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _save_model(model, target: Path) -> None:
    with atomic_path(target) as tmp:
        model.save(tmp)


def _epoch_recorder(run_dir: Path, state: dict, stage: str, phase: int | None, size: int):
    """A Keras callback that, after every epoch, writes the checkpoints, the history row and
    ``state.json`` (in that order: ``state.json`` is the commit point for resume)."""
    keras = import_keras()

    paths = _paths(run_dir)

    class EpochRecorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            state["epochs_done"] += 1
            state["stage_epochs_done"] = epoch + 1
            if phase is not None:
                state["phase_epochs_done"] = epoch + 1
            state["step"] = _step(self.model)
            row = {"stage": stage, "phase": "" if phase is None else phase, "size": size,
                   "epoch": state["epochs_done"], "lr": current_lr(self.model)}
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                row[key] = logs.get(key)
            _save_model(self.model, paths["last"])
            val_acc = logs.get("val_accuracy")
            best = state.get("best_val_accuracy")
            if val_acc is not None and (best is None or val_acc > best):
                with atomic_path(paths["best"]) as tmp:
                    shutil.copyfile(paths["last"], tmp)
                state["best_val_accuracy"] = float(val_acc)
                state["best_epoch"] = state["epochs_done"]
            rows = read_history(run_dir)
            rows.append({k: _fmt(v) for k, v in row.items()})
            _write_history(run_dir, rows)
            state["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
            write_json(paths["state"], state)

    return EpochRecorder()


_warned: dict[str, bool] = {}


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package (needed by ``tf.summary``) is installed."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _callbacks(run_dir: Path, state: dict, stage: str, phase, size: int) -> list:
    keras = import_keras()

    callbacks = [_epoch_recorder(run_dir, state, stage, phase, size)]
    if tensorboard_available():
        callbacks.append(keras.callbacks.TensorBoard(
            log_dir=str(_paths(run_dir)["tb"] / stage), write_graph=False,
            update_freq="epoch"))
    elif not _warned.get("tensorboard"):
        _warned["tensorboard"] = True
        log.warning("tensorboard is not installed: no TensorBoard logs "
                    "(pip install tensorboard); history.csv has the same numbers")
    return callbacks


def _truncate_history(run_dir: Path, epochs_done: int) -> None:
    """Drop history rows that a killed run wrote after its last committed ``state.json``."""
    rows = read_history(run_dir)
    keep = [r for r in rows if r.get("epoch") and int(r["epoch"]) <= epochs_done]
    if len(keep) != len(rows):
        _write_history(run_dir, keep)


def _restore_model(run_dir: Path, state: dict):
    """``last.keras`` with its optimizer, the step set back to ``state.json``'s if a kill
    landed between the checkpoint and the state write."""
    model = load_checkpoint(_paths(run_dir)["last"])
    if _step(model) != state.get("step", _step(model)):
        log.warning("checkpoint is ahead of state.json (killed mid-save); continuing from "
                    "state.json's epoch %s", state.get("epochs_done"))
        model.optimizer.iterations.assign(int(state["step"]))
    _truncate_history(run_dir, int(state.get("epochs_done", 0)))
    return model


def _load_index(data_root):
    from .dataset import load_index

    return load_index(data_root)


def _fit(model, train_ds, val_ds, epochs, initial_epoch, callbacks, progress,
         class_weight=None):
    from .pipeline import pipeline_errors

    with pipeline_errors():
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=initial_epoch,
                  callbacks=callbacks, verbose=1 if progress else 0, class_weight=class_weight,
                  shuffle=False)  # the pipeline shuffles


def _phase_report(run_dir: Path, model, index, cfg: TrainConfig, phase_no: int, state: dict):
    from .reports import write_stage_report

    phase = cfg.phases[phase_no - 1]
    y_true, probs = evaluate_model(model, index, phase.size, cfg.eval_batch_size or
                                   cfg.batch_size)
    meta = {"kind": "phase", "phase": phase_no, "size": phase.size, "epochs": phase.epochs,
            "epochs_done": state["epochs_done"], "step": state["step"],
            "recipe": phase.recipe}
    return write_stage_report(run_dir, f"phase-{phase_no}", y_true, probs,
                              list(index.class_ids), list(index.class_names), meta=meta,
                              val_paths=index.val.paths)


@dataclass
class RunResult:
    """What :func:`train_run` returns: the run folder, its final state and history."""

    run_dir: Path
    state: dict
    history: list[dict]
    model: Any = None

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "last.keras"

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "best.keras"


def train_run(config, data_root=None, run_dir="runs/run", resume: bool = False,
              progress: bool = True) -> RunResult:
    """Train every phase of a config into ``run_dir``; with ``resume`` continue a killed run.

    ``config``: YAML path, dict or :class:`TrainConfig` (ignored on resume: the run's own
    ``config.yaml`` is used). ``data_root``: dataset folder (on resume defaults to the
    recorded one). Writes the run folder described in the module docstring and a
    ``reports/phase-N`` report after each phase. Returns a :class:`RunResult`.
    """
    import yaml

    run_dir = Path(run_dir).expanduser().resolve()
    paths = _paths(run_dir)
    if resume:
        if not paths["state"].is_file():
            raise AugmineError(f"{run_dir}: nothing to resume (no state.json); run without "
                               "--resume to start it")
        state = read_state(run_dir)
        cfg = load_config(paths["config"])
        data_root = data_root or cfg.data
        if state.get("status") == "done":
            log.info("%s: already done", run_dir)
            return RunResult(run_dir, state, read_history(run_dir))
    else:
        if paths["state"].is_file():
            raise AugmineError(f"{run_dir}: already holds a run (state.json); add --resume to "
                               "continue it or choose a new --run-dir")
        cfg = load_config(config)
        if data_root is None:
            raise AugmineError("no dataset given; pass --data PATH")
        state = None
    data_root = Path(data_root).expanduser().resolve()
    index = _load_index(data_root)
    if state is None:
        cfg.data = str(data_root)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(paths["config"], yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        state = {"status": "running", "stage": "phase-1", "phase": 1, "phase_epochs_done": 0,
                 "stage_epochs_done": 0, "epochs_done": 0, "step": 0,
                 "planned_epochs": cfg.total_epochs, "num_classes": index.num_classes,
                 "best_val_accuracy": None, "best_epoch": None, "reports": [], "rounds": {}}
        write_json(paths["state"], state)

    keras = import_keras()

    keras.utils.set_random_seed(cfg.seed + int(state["epochs_done"]))
    strategy = make_strategy(cfg.strategy)
    eval_bs = cfg.eval_batch_size or cfg.batch_size
    with _dtype_policy(use_mixed_precision(cfg.mixed_precision)):
        with strategy.scope():
            if paths["last"].is_file():
                model = _restore_model(run_dir, state)
            else:
                model = build_model(cfg, index.num_classes)
        if model.output_shape[-1] != index.num_classes:
            raise AugmineError(f"{data_root} has {index.num_classes} classes but the run's "
                               f"model predicts {model.output_shape[-1]}; use the run's dataset")
        for phase_no, phase in enumerate(cfg.phases, 1):
            if phase_no < state["phase"]:
                continue
            done = state["phase_epochs_done"] if phase_no == state["phase"] else 0
            state.update({"phase": phase_no, "stage": f"phase-{phase_no}",
                          "phase_epochs_done": done, "stage_epochs_done": done})
            if done < phase.epochs:
                log.info("phase %d: %d px, epochs %d..%d, recipe %s", phase_no, phase.size,
                         done + 1, phase.epochs, Path(phase.recipe).name)
                train_ds = _train_ds(index, phase.recipe, phase.size, cfg.batch_size,
                                     seed=cfg.seed + phase_no, workers=cfg.workers)
                val_ds = _eval_ds(index, phase.size, eval_bs)
                _fit(model, train_ds, val_ds, phase.epochs, done,
                     _callbacks(run_dir, state, f"phase-{phase_no}", phase_no, phase.size),
                     progress)
            if f"phase-{phase_no}" not in state["reports"]:
                _phase_report(run_dir, model, index, cfg, phase_no, state)
                state["reports"].append(f"phase-{phase_no}")
                write_json(paths["state"], state)
            if phase_no < len(cfg.phases):
                state.update({"phase": phase_no + 1, "phase_epochs_done": 0,
                              "stage": f"phase-{phase_no + 1}", "stage_epochs_done": 0})
                write_json(paths["state"], state)
    state["status"] = "done"
    write_json(paths["state"], state)
    return RunResult(run_dir, state, read_history(run_dir), model)


def train_extra_epochs(run_dir, index, epochs: int, plan=None, class_weight=None,
                       stage: str = "round-1", progress: bool = True, recipe=None,
                       size: int | None = None):
    """Train ``epochs`` more epochs from the run's ``last.keras`` (a mining round).

    ``index``: the run's :class:`~augmine.dataset.DatasetIndex`; ``plan``: an
    ``OversamplingPlan`` handed to the pipeline (None = plain epochs); ``class_weight``:
    Keras ``{class: weight}``; ``recipe``: recipe for all classes (default: the last
    phase's; the plan's own ``recipe`` covers its weak classes); ``size``: default the last phase's. The optimizer
    continues (same schedule step). Every epoch updates ``last.keras``, ``best.keras``,
    ``history.csv`` (rows with this ``stage``) and ``state.json`` exactly as phases do, so a
    killed round resumes by calling this again with the same ``stage``; a stage already
    finished is not trained again. Returns the Keras model.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    paths = _paths(run_dir)
    epochs = _int(epochs, "extra epochs", 1, "epoch count")
    state = read_state(run_dir)
    cfg = load_config(paths["config"], check_recipes=False)
    last = cfg.phases[-1]
    size = int(size or last.size)
    recipe = recipe or last.recipe
    info = state.setdefault("rounds", {}).setdefault(
        stage, {"epochs": epochs, "epochs_done": 0, "done": False})
    done = int(state.get("stage_epochs_done", 0)) if state.get("stage") == stage else 0
    strategy = make_strategy(cfg.strategy)
    with _dtype_policy(use_mixed_precision(cfg.mixed_precision)):
        with strategy.scope():
            model = _restore_model(run_dir, state)
        if info.get("done"):
            log.info("%s: stage %s already trained; returning its model", run_dir, stage)
            return model
        info["epochs"] = epochs
        state.update({"status": "running", "stage": stage, "stage_epochs_done": done})
        write_json(paths["state"], state)
        if done < epochs:
            train_ds = _train_ds(index, recipe, size, cfg.batch_size, plan=plan,
                                 seed=cfg.seed + 1000 + len(state["rounds"]),
                                 workers=cfg.workers)
            val_ds = _eval_ds(index, size, cfg.eval_batch_size or cfg.batch_size)
            _fit(model, train_ds, val_ds, epochs, done,
                 _callbacks(run_dir, state, stage, None, size), progress,
                 class_weight=class_weight)
    info["epochs_done"] = int(state["stage_epochs_done"])
    info["done"] = True
    state["status"] = "done"
    write_json(paths["state"], state)
    return model


# --------------------------------------------------------------------------- evaluate, lr-find

def resolve_checkpoint(run_or_checkpoint, which: str = "best") -> tuple[Path, dict | None]:
    """``(checkpoint path, run config dict or None)`` for a run folder or a ``.keras`` file."""
    import yaml

    path = Path(run_or_checkpoint).expanduser()
    if path.is_dir():
        ckpt = _paths(path)["best" if which == "best" else "last"]
        if not ckpt.is_file() and which == "best":
            ckpt = _paths(path)["last"]
        if not ckpt.is_file():
            raise AugmineError(f"{path}: no checkpoints/{which}.keras; is this a run folder "
                               "that finished at least one epoch?")
        cfg_path = _paths(path)["config"]
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else None
        return ckpt, cfg
    if not path.is_file():
        raise AugmineError(f"{path}: neither a run folder nor a .keras checkpoint")
    run = path.parent.parent
    cfg_path = _paths(run)["config"]
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else None
    return path, cfg


def evaluate_checkpoint(run_or_checkpoint, data_root=None, size: int | None = None,
                        batch_size: int | None = None, which: str = "best") -> dict:
    """Top-1/top-5 accuracy and loss of a run's checkpoint (or a ``.keras`` file) on val.

    ``size``/``batch_size``/``data_root`` default to the run's last phase, batch and data.
    Returns ``{"top1", "top5", "loss", "num_samples", "checkpoint", "size", "data"}``.
    """
    ckpt, cfg = resolve_checkpoint(run_or_checkpoint, which)
    cfg = cfg or {}
    data_root = data_root or cfg.get("data")
    if not data_root:
        raise AugmineError(f"{ckpt}: no recorded dataset; pass --data PATH")
    if size is None:
        phases = cfg.get("phases") or []
        size = int(phases[-1]["size"]) if phases else 64
    batch_size = int(batch_size or cfg.get("eval_batch_size") or cfg.get("batch_size") or 256)
    index = _load_index(data_root)
    model = load_checkpoint(ckpt, compile=False)
    if model.output_shape[-1] != index.num_classes:
        raise AugmineError(f"{ckpt} predicts {model.output_shape[-1]} classes but {data_root} "
                           f"has {index.num_classes}; evaluate on the run's dataset")
    result = accuracy_summary(*evaluate_model(model, index, size, batch_size))
    result.update({"checkpoint": str(ckpt), "size": size, "data": str(data_root)})
    return result


def lr_find(config, data_root, out_dir, phase: int = 1, steps: int = 200,
            start_lr: float = 1e-5, end_lr: float = 1.0, progress: bool = True) -> dict:
    """LR range test for a config's model at phase ``phase``'s size and recipe.

    Writes ``out_dir/lr_find.png`` (loss vs LR) and ``out_dir/lr_find.json``; returns the
    result of :func:`augmine.schedules.lr_range_test` plus ``png``/``json`` paths.
    """
    cfg = load_config(config)
    if not 1 <= phase <= len(cfg.phases):
        raise AugmineError(f"--phase {phase} is out of range; the config has "
                           f"{len(cfg.phases)} phases")
    if not (0 < start_lr < end_lr):
        raise AugmineError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    _int(steps, "--steps", 5, "step count")
    from .model import build_densenet
    from .schedules import lr_range_test

    index = _load_index(data_root)
    ph = cfg.phases[phase - 1]
    keras = import_keras()

    keras.utils.set_random_seed(cfg.seed)
    model = build_densenet(index.num_classes, **cfg.model)
    ds = _train_ds(index, ph.recipe, ph.size, cfg.batch_size, seed=cfg.seed,
                   workers=cfg.workers)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    opt = {k: v for k, v in cfg.optimizer.items() if k in ("momentum", "nesterov")}
    result = lr_range_test(model, ds, out_png=out_dir / "lr_find.png", start_lr=start_lr,
                           end_lr=end_lr, steps=steps, **opt)
    result["png"] = str(out_dir / "lr_find.png")
    result["json"] = str(out_dir / "lr_find.json")
    write_json(out_dir / "lr_find.json",
               {k: v for k, v in result.items() if k != "smoothed"})
    return result
