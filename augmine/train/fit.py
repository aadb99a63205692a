"""One stage of training: devices and strategies (``multi-worker`` included: the cluster
environment, the backend's engine, which process writes), precision, callbacks and
checkpoints around ``model.fit``.

:func:`fit_stage` is the one compile/fit sequence used by the phases, the mining rounds and
the demo; :func:`stage_callbacks` gives the callbacks every stage uses (the epoch recorder
that commits each epoch through :class:`~augmine.runs.rundir.RunDir`, TensorBoard on the
TensorFlow backend, one printed line per epoch); :func:`distribution` places the model on
the devices (``tf.distribute.MirroredStrategy`` on TensorFlow, ``keras.distribution.
DataParallel`` on JAX). Nothing here imports TensorFlow unless Keras runs on it.

Resume: after every epoch the recorder writes ``last.keras`` (weights + optimizer state,
including the step; flushed, then renamed into place), then links the best checkpoints to it
when val accuracy improved, then appends the history row, then writes ``state.json`` last
(flushed), so ``state.json`` is the commit point.

Validation: :func:`epoch_validation` predicts the val split once an epoch (its decoded images
kept by the feed) and puts ``val_loss``/``val_accuracy`` in the epoch's logs; the phase report
reuses the last epoch's predictions.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time

from augmine.core.errors import AugmineError
from augmine.core.runtime import import_keras, keras_backend
from augmine.feed.sampling import Shard
from augmine.runs.factories import load_checkpoint, save_checkpoint
from augmine.runs.rundir import RunDir
from augmine.runs.state import BestAtSize, RunState


# =========================================================================== multiworker
# ``strategy: multi-worker``: one run trained by several processes, on one host or many.
#
# Each process is started by hand (or a launcher) with the backend's own environment:
#
# - TensorFlow: ``TF_CONFIG`` (``{"cluster": {"worker": ["host0:port", ...]}, "task":
# {"type": "worker", "index": i}}``), read by ``tf.distribute.MultiWorkerMirroredStrategy``;
# one device per process (one process per GPU, ``CUDA_VISIBLE_DEVICES``).
# - JAX: ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator ``host:port`` first),
# ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID``, read by
# ``keras.distribution.initialize`` (``jax.distributed.initialize``; gloo collectives on
# CPU); the model is replicated with ``keras.distribution.DataParallel`` over every
# process's devices.
#
# Process 0 is the chief. Every process reads its own disjoint part of every epoch
# (:mod:`augmine.feed.sampling`), and only the chief writes the run folder: the others write
# into a private scratch copy (what Keras asks of MultiWorkerMirroredStrategy's non-chief
# workers), deleted when they exit. On resume every process reads the run folder's
# ``state.json`` and ``last.keras`` (the folder must be on storage all hosts share).

log = logging.getLogger("augmine")

MULTI_WORKER = "multi-worker"
JAX_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
           "KERAS_DISTRIBUTION_PROCESS_ID")
DOCS = "see docs/backends.md#several-machines-multi-worker"

_shard: Shard | None = None       # this process's place, once its engine started


def cluster_from_env(backend: str | None = None, env=None) -> Shard:
    """This process's :class:`~augmine.feed.sampling.Shard` from the launch environment of
    ``backend`` (default: Keras' backend): ``TF_CONFIG`` on TensorFlow (a ``chief`` task,
    when listed, is process 0, then the ``worker`` tasks), ``KERAS_DISTRIBUTION_*`` on JAX.
    One-line :class:`AugmineError` naming what is missing or wrong."""
    backend = backend or keras_backend()
    env = os.environ if env is None else env
    if backend == "tensorflow":
        raw = env.get("TF_CONFIG")
        if not raw:
            raise AugmineError(f"strategy multi-worker: TF_CONFIG is not set; start every "
                               f"worker with its TF_CONFIG ({DOCS})")
        try:
            conf = json.loads(raw)
            cluster, task = conf["cluster"], conf["task"]
            roles = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
            index = int(task["index"]) + (len(cluster.get("chief", []))
                                         if task["type"] == "worker" else 0)
            if task["type"] not in ("chief", "worker"):
                raise ValueError(task["type"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AugmineError(f"TF_CONFIG: cannot read it ({exc!r}); it needs cluster.worker "
                               f"and task.type/index ({DOCS})")
        return Shard(index, len(roles))
    if backend == "jax":
        missing = [name for name in JAX_ENV if not env.get(name)]
        if missing:
            raise AugmineError(f"strategy multi-worker: {', '.join(missing)} not set; start "
                               f"every process with {', '.join(JAX_ENV)} ({DOCS})")
        try:
            index, count = int(env[JAX_ENV[2]]), int(env[JAX_ENV[1]])
        except ValueError:
            raise AugmineError(f"{JAX_ENV[1]} and {JAX_ENV[2]} must be whole numbers ({DOCS})")
        return Shard(index, count, equal_sizes=True)
    raise AugmineError(f"strategy multi-worker runs on TensorFlow or JAX, not {backend}; set "
                       "KERAS_BACKEND=jax or tensorflow")


def start(batch_size: int | None = None) -> Shard:
    """Join the cluster once per process (MultiWorkerMirroredStrategy on TensorFlow,
    ``keras.distribution.initialize`` on JAX), before any other backend work; returns this
    process's shard. ``batch_size`` (the global batch) must split evenly among the
    processes. Later calls return the same shard."""
    global _shard
    if _shard is None:
        shard = cluster_from_env()
        if keras_backend() == "tensorflow":
            from augmine.feed.tf_backend import multi_worker_strategy

            replicas = multi_worker_strategy().num_replicas_in_sync
            if replicas != shard.count:
                raise AugmineError(f"multi-worker: {replicas} devices over {shard.count} "
                                   "processes; run one process per device (set "
                                   "CUDA_VISIBLE_DEVICES per process)")
        else:
            import jax

            import_keras().distribution.initialize()
            if jax.process_count() != shard.count or jax.process_index() != shard.index:
                raise AugmineError(f"multi-worker: JAX sees process {jax.process_index()} of "
                                   f"{jax.process_count()}, the environment says "
                                   f"{shard.index} of {shard.count} ({DOCS})")
        _shard = shard
        log.info("multi-worker: process %d of %d joined", shard.index, shard.count)
    if batch_size is not None and int(batch_size) % _shard.count:
        raise AugmineError(f"batch_size {batch_size} does not split among {_shard.count} "
                           f"processes; use a multiple of {_shard.count}")
    return _shard


def process_shard(strategy: str) -> Shard | None:
    """This process's shard when ``strategy`` is ``multi-worker`` (joining the cluster on
    the first call), else None."""
    return start() if strategy == MULTI_WORKER else None


def barrier() -> None:
    """Return once every process of the cluster got here."""
    if keras_backend() == "tensorflow":
        from augmine.feed.tf_backend import all_workers_reached, multi_worker_strategy

        all_workers_reached(multi_worker_strategy())
    else:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("augmine")


def process_run(run: RunDir, strategy: str, batch_size: int | None = None) -> RunDir:
    """The run folder this process writes: ``run`` itself, except in a multi-worker run on
    a process other than 0, which gets a scratch copy of what ``run`` holds now (config,
    state, history, ``last.keras``: resume reads the same state everywhere), removed at
    exit. Waits for every process before returning, so the chief writes nothing before the
    others have read the folder."""
    if strategy != MULTI_WORKER:
        return run
    shard = start(batch_size)
    if shard.index != 0:
        scratch = RunDir(tempfile.mkdtemp(prefix=f"augmine-process-{shard.index}-"))
        atexit.register(shutil.rmtree, scratch.path, True)
        for src, dst in ((run.config_path, scratch.config_path),
                         (run.state_path, scratch.state_path),
                         (run.history_path, scratch.history_path),
                         (run.checkpoint("last"), scratch.checkpoint("last"))):
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        log.info("multi-worker process %d writes into the scratch folder %s", shard.index,
                 scratch)
        run = scratch
    barrier()
    return run


@contextlib.contextmanager
def multi_worker_distribution():
    """Context to build (or load) and fit the model in across every process; yields the
    number of replicas (one per device of every process)."""
    start()
    if keras_backend() == "tensorflow":
        from augmine.feed.tf_backend import multi_worker_strategy

        strategy = multi_worker_strategy()
        with strategy.scope():
            yield strategy.num_replicas_in_sync
        return
    keras = import_keras()
    devices = keras.distribution.list_devices()
    before = keras.distribution.distribution()
    keras.distribution.set_distribution(keras.distribution.DataParallel(
        devices=devices, auto_shard_dataset=False))       # each process feeds its own shard
    try:
        yield len(devices)
    finally:
        keras.distribution.set_distribution(before)


def process_feed(feed, shard: Shard | None):
    """``feed`` (this process's training batches) as the engine takes it: on TensorFlow a
    dataset distributed per worker (no re-sharding), elsewhere unchanged."""
    if shard is None or keras_backend() != "tensorflow":
        return feed
    from augmine.feed.tf_backend import multi_worker_strategy, per_worker_dataset

    distributed = per_worker_dataset(multi_worker_strategy(), feed)
    distributed._augmine_feed = feed._augmine_feed          # close_feed stops its workers
    return distributed


@contextlib.contextmanager
def whole_predictions(strategy: str):
    """Context for ``model.predict`` in a multi-worker run: every process gets every
    prediction. On JAX each process then feeds the whole batch and the inputs are
    replicated, not split (JAX cannot hand a process the rows other processes computed);
    TensorFlow's strategy gathers the rows itself. Nothing changes in other runs."""
    if strategy != MULTI_WORKER or keras_backend() != "jax":
        yield
        return
    keras = import_keras()
    before = keras.distribution.distribution()

    class ReplicatedInputs(keras.distribution.DataParallel):
        def get_data_layout(self, data_shape):
            return keras.distribution.TensorLayout([None] * len(data_shape), self.device_mesh)

    keras.distribution.set_distribution(ReplicatedInputs(device_mesh=before.device_mesh,
                                                         auto_shard_dataset=False))
    try:
        yield
    finally:
        keras.distribution.set_distribution(before)


# =========================================================================== fit

log = logging.getLogger("augmine")

_warned: set[str] = set()


# --------------------------------------------------------------------------- devices, precision

def _devices() -> list[str]:
    """Keras' device names (``cpu:0``, ``gpu:0``, ...); [] where the backend cannot list them."""
    keras = import_keras()
    try:
        return [str(d).lower() for d in keras.distribution.list_devices()]
    except (NotImplementedError, AttributeError, RuntimeError):
        return []


def gpu_present() -> bool:
    """Whether the Keras backend sees a GPU."""
    return any(d.startswith(("gpu", "cuda")) for d in _devices())


def precision_policy(setting: str = "auto") -> str:
    """The Keras dtype policy for a config's ``mixed_precision``: ``auto`` is
    ``mixed_float16`` when a GPU is present (else ``float32``), ``true`` is
    ``mixed_float16``, ``false`` is ``float32``; policy names pass through."""
    setting = str(setting).lower()
    if setting == "auto":
        return "mixed_float16" if gpu_present() else "float32"
    return {"true": "mixed_float16", "false": "float32"}.get(setting, setting)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Set Keras' global dtype policy to ``name`` for the duration (restored after)."""
    keras = import_keras()
    before = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


@contextlib.contextmanager
def distribution(name: str = "auto"):
    """Context to build (or load) and fit a model in; yields the number of replicas.

    ``auto``: every GPU when there is more than one, else one device; ``mirrored``: every
    GPU, or every (logical) CPU device when there is no GPU; ``default``: one device.
    TensorFlow uses ``tf.distribute.MirroredStrategy`` (:mod:`augmine.feed.tf_backend`), JAX
    ``keras.distribution.DataParallel``; other backends train on one device.
    ``multi-worker``: every device of every process (:mod:`augmine.train.fit`).
    """
    if name == "multi-worker":

        with multi_worker_distribution() as replicas:
            yield replicas
        return
    backend = keras_backend()
    if backend == "tensorflow":
        from augmine.feed.tf_backend import mirrored_strategy

        strategy = mirrored_strategy(name)
        with strategy.scope():
            yield strategy.num_replicas_in_sync
        return
    devices = _devices() if backend == "jax" and name != "default" else []
    gpus = [d for d in devices if not d.startswith("cpu")]
    chosen = gpus if gpus else (devices if name == "mirrored" else [])
    if len(chosen) < 2:
        yield 1
        return
    keras = import_keras()
    before = keras.distribution.distribution()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=chosen))
    try:
        yield len(chosen)
    finally:
        keras.distribution.set_distribution(before)


# --------------------------------------------------------------------------- models

def build_model(cfg, num_classes: int, phase_steps=None, reuse: bool = False):
    """The config's model (the DenseNet or its builder/application/file) compiled with its
    optimizer and schedule, sparse cross-entropy and accuracy (``cfg``: a
    :class:`~augmine.runs.config.TrainConfig`; ``phase_steps``: ``(steps_per_epoch, epochs)``
    per phase, for phase-aligned schedules). ``reuse``: in a model kept from an earlier
    build of this process for the same model, optimizer, schedule and loss, holding the new
    model's initial state (:func:`~augmine.train.evaluation.kept_new_model`, whose caveats
    apply), so its traced steps are reused."""
    from augmine.runs.factories import create_model, create_optimizer, create_schedule

    model = create_model(cfg.model, num_classes, where=cfg.path or "config")
    schedule = create_schedule(cfg.schedule, phase_steps, where=cfg.path or "config")
    loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    reg = getattr(cfg, "regularization", None)
    if reg is not None and reg.soft_targets:
        from augmine.model.sources import SoftTargetCrossentropy, accuracy_metric

        loss, metrics = SoftTargetCrossentropy(reg.label_smoothing), [accuracy_metric()]
    model.compile(optimizer=create_optimizer(cfg.optimizer, schedule), loss=loss,
                  metrics=metrics)
    if not reuse:
        return model
    from augmine.train.evaluation import kept_new_model

    sections = (cfg.model, cfg.optimizer, cfg.schedule, cfg.regularization)
    key = [part.model_dump(mode="json") for part in sections] + [phase_steps, num_classes]
    return kept_new_model(model, json.dumps(key, sort_keys=True, default=str))


def model_step(model) -> int:
    """The optimizer's step count (``iterations``)."""
    keras = import_keras()
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def current_lr(model) -> float:
    """The optimizer's learning rate at its current step."""
    keras = import_keras()
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def restore_model(run: RunDir, state: RunState, reuse: bool = False):
    """``last.keras`` with its optimizer, the step set back to ``state.json``'s when a kill
    landed between the checkpoint and the state write; later history rows dropped.
    ``reuse``: in a kept model of the same config (:func:`~augmine.train.evaluation.
    reusable_model`, whose caveats apply)."""
    from augmine.train.evaluation import reusable_model

    model = reusable_model(run.checkpoint("last")) if reuse else \
        load_checkpoint(run.checkpoint("last"))
    if model_step(model) != state.step:
        log.warning("checkpoint is ahead of state.json (killed mid-save); continuing from "
                    "state.json's epoch %s", state.epochs_done)
        model.optimizer.iterations.assign(state.step)
    run.truncate_history(state.epochs_done)
    return model


# --------------------------------------------------------------------------- callbacks

def epoch_recorder(run: RunDir, state: RunState, stage: str, phase: int | None, size: int):
    """A Keras callback that, after every epoch, writes ``last.keras``, links the best
    checkpoints (overall and at ``size``) to it when val accuracy improved, appends the
    history row and writes ``state.json`` (in that order: ``state.json`` is the commit point
    for resume).
    ``state`` is updated in place."""
    keras = import_keras()

    class EpochRecorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            state.epochs_done += 1
            state.stage_epochs_done = epoch + 1
            if phase is not None:
                state.phase_epochs_done = epoch + 1
            state.step = model_step(self.model)
            row = {"stage": stage, "phase": "" if phase is None else phase, "size": size,
                   "epoch": state.epochs_done, "lr": current_lr(self.model)}
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                row[key] = logs.get(key)
            save_checkpoint(run, self.model)
            val_acc = logs.get("val_accuracy")
            if val_acc is not None:
                val_acc = float(val_acc)
                best = state.best_val_accuracy
                if best is None or val_acc > best:
                    run.promote_best()
                    state.best_val_accuracy, state.best_epoch = val_acc, state.epochs_done
                here = state.best_by_size.get(str(size))
                if here is None or val_acc > here.val_accuracy:
                    run.promote_best(size)
                    state.best_by_size[str(size)] = BestAtSize(
                        val_accuracy=val_acc, epoch=state.epochs_done, stage=stage)
            run.append_history(row)
            state.updated = time.strftime("%Y-%m-%dT%H:%M:%S")
            run.write_state(state)

    return EpochRecorder()


def frozen_features(run: RunDir, frozen: list[str], full_optimizer):
    """A Keras callback for a stage that trains only a model's head (the layers named in
    ``frozen`` frozen, the model's optimizer a
    :func:`~augmine.model.sources.head_optimizer`): at every epoch's end (after the epoch
    recorder) the layers are set trainable again, the head optimizer's step and slots go
    into ``full_optimizer`` (the run's, built on every layer) and ``last.keras`` is saved
    once more with it, so the run's checkpoint trains whole and keeps every optimizer slot;
    the next epoch starts frozen again."""
    keras = import_keras()
    from augmine.model.sources import copy_optimizer_state, set_trainable

    class FrozenFeatures(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            set_trainable(self.model, frozen, False)

        def on_epoch_end(self, epoch, logs=None):
            head = self.model.optimizer
            set_trainable(self.model, frozen, True)
            copy_optimizer_state(head, full_optimizer)
            self.model.optimizer = full_optimizer
            try:
                save_checkpoint(run, self.model)
            finally:
                self.model.optimizer = head

    return FrozenFeatures()


def epoch_validation(val_feed, index, size: int, batch_size: int, strategy: str = "default"):
    """A Keras callback validating after every epoch with one prediction pass over
    ``val_feed`` (an ``eval_dataset`` of ``index``'s val split at ``size``): ``val_loss`` (the
    compiled loss plus the model's regularization losses, as Keras' own validation has it)
    and ``val_accuracy`` go into the epoch's logs, and ``predictions`` keeps ``(y_true,
    probs)`` of the latest epoch, so a stage's report needs no second pass. Put it first in
    the callback list (every later callback reads the values) and fit without
    ``validation_data``."""
    import hashlib

    import numpy as np

    from augmine.analysis.metrics import top1
    from augmine.train.evaluation import evaluate_model

    keras = import_keras()

    def digest(model) -> str:
        sha = hashlib.blake2b(digest_size=16)
        for weights in model.get_weights():
            sha.update(np.ascontiguousarray(weights).tobytes())
        return sha.hexdigest()

    class EpochValidation(keras.callbacks.Callback):
        predictions, _made_with = None, None

        def on_epoch_end(self, epoch, logs=None):
            with whole_predictions(strategy):
                y_true, probs = evaluate_model(self.model, index, size, batch_size,
                                               feed=val_feed)
            loss = self.model.compute_loss(y=y_true, y_pred=probs, training=False)
            if logs is not None:
                logs["val_loss"] = float(keras.ops.convert_to_numpy(loss))
                logs["val_accuracy"] = top1(y_true, probs)
            self.predictions = (y_true, probs)
            last = epoch + 1 == (self.params or {}).get("epochs")
            self._made_with = digest(self.model) if last else None

        def final_predictions(self, model):
            """The last epoch's ``(y_true, probs)`` when ``model``'s weights are still the
            ones they were made with (a callback may restore others when the fit ends),
            else None."""
            if self._made_with is None or digest(model) != self._made_with:
                return None
            return self.predictions

    return EpochValidation()


def run_progress(total: int, done: int = 0):
    """The whole run's progress: a tqdm counter of ``total`` epochs starting at ``done``,
    kept across the run's fits; ``str()`` of it reads ``7/16 epochs, 12:30 elapsed, ETA
    26:40`` (tqdm's rate and remaining time over the epochs of this session). Drawn
    nowhere: the epoch lines and :func:`run_status` print it."""
    import io

    from tqdm.auto import tqdm

    return tqdm(total=int(total), initial=int(done), file=io.StringIO(), smoothing=0,
                mininterval=0, bar_format="{n_fmt}/{total_fmt} epochs, {elapsed} elapsed, "
                                          "ETA {remaining}")


def epoch_lines(echo=None, label: str | None = None, run_bar=None):
    """A Keras callback printing one line per epoch (``epoch N/M: loss ... val_accuracy ...``),
    for logs and pipes where Keras' carriage-return bars are noise. ``echo``: default print;
    ``label`` starts every line (the stage or arm: ``phase 2 (32 px, light) epoch 1/2: ...``,
    ``round-2 control epoch 1/2: ...``); ``run_bar`` (:func:`run_progress`) is advanced and
    appended (``[run 7/16 epochs, ..., ETA 26:40]``)."""
    keras = import_keras()
    echo = echo or (lambda line: print(line, flush=True))
    head = f"{label} " if label else ""

    class EpochLines(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            parts = [f"{k} {float(v):.4f}" for k, v in (logs or {}).items()
                     if k in ("loss", "accuracy", "val_loss", "val_accuracy")]
            took = time.perf_counter() - getattr(self, "_start", time.perf_counter())
            tail = ""
            if run_bar is not None:
                run_bar.update(1)
                tail = f" [run {run_bar}]"
            echo(f"{head}epoch {epoch + 1}/{self.params.get('epochs')}: {', '.join(parts)} "
                 f"({took:.0f} s){tail}")

    return EpochLines()


def run_status(run_bar, label: str | None = None, echo=None):
    """A Keras callback that, beside Keras' own per-epoch bars, prints the whole run's
    progress after every epoch: ``phase 2 (32 px, light): run 7/16 epochs, ..., ETA 26:40``."""
    keras = import_keras()
    echo = echo or (lambda line: print(line, flush=True))

    class RunStatus(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            run_bar.update(1)
            echo(f"{label + ': ' if label else ''}run {run_bar}")

    return RunStatus()


def epoch_seeder(seed: int, state: RunState):
    """A Keras callback seeding Python, numpy and the backend with ``seed + epochs done``
    (over the whole run) at the start of every epoch, so a resumed run draws the same
    random numbers at epoch N as an uninterrupted one."""
    keras = import_keras()

    class EpochSeeder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            keras.utils.set_random_seed(int(seed) + state.epochs_done)

    return EpochSeeder()


def tensorboard_available() -> bool:
    """Whether TensorBoard logs can be written: the ``tensorboard`` package is installed and
    Keras runs on TensorFlow (its TensorBoard callback writes through ``tf.summary``)."""
    import importlib.util

    return keras_backend() == "tensorflow" and importlib.util.find_spec("tensorboard") is not None


def epoch_tensorboard(log_dir):
    """Keras' TensorBoard callback writing once per epoch (``update_freq="epoch"``, no graph,
    no profiling) without its per-batch hooks: with them Keras hands every batch's logs to
    the callbacks in step (and they would only count batches), a cost on every step."""
    keras = import_keras()
    base = keras.callbacks.Callback

    class EpochTensorBoard(keras.callbacks.TensorBoard):
        on_train_batch_begin = base.on_train_batch_begin
        on_train_batch_end = base.on_train_batch_end

    return EpochTensorBoard(log_dir=str(log_dir), write_graph=False, update_freq="epoch",
                            profile_batch=0)


def stage_callbacks(run: RunDir, state: RunState, stage: str, phase: int | None, size: int,
                    progress: bool = True, extra=(), seed: int | None = None,
                    label: str | None = None, run_bar=None) -> list:
    """The callbacks of one stage: the epoch seeder (when ``seed`` is given), the epoch
    recorder, TensorBoard (when available), one line per epoch (starting with ``label``)
    when there are no progress bars, the whole run's progress (``run_bar``, see
    :func:`run_progress`: in the epoch lines, else a line after each Keras bar), then
    ``extra`` (yours, e.g. early stopping)."""
    keras = import_keras()
    callbacks = [] if seed is None else [epoch_seeder(seed, state)]
    callbacks.append(epoch_recorder(run, state, stage, phase, size))
    if tensorboard_available():
        callbacks.append(epoch_tensorboard(run.tensorboard_dir(stage)))
    elif "tensorboard" not in _warned:
        _warned.add("tensorboard")
        why = "tensorboard is not installed (pip install tensorboard)" \
            if keras_backend() == "tensorflow" else \
            f"TensorBoard logs need the TensorFlow backend (this is {keras_backend()})"
        log.info("%s: no TensorBoard logs; history.csv has the same numbers", why)
    if not show_bars(progress):
        callbacks.append(epoch_lines(label=label, run_bar=run_bar))
    elif run_bar is not None:
        callbacks.append(run_status(run_bar, label))
    return callbacks + list(extra)


def show_bars(progress: bool) -> bool:
    """Keras progress bars only when asked for and stdout is a terminal."""
    return bool(progress) and sys.stdout.isatty()


# --------------------------------------------------------------------------- the fit

def fit_stage(model, train_feed, val_feed, epochs: int, initial_epoch: int, callbacks,
              progress: bool = True, class_weight=None):
    """Fit ``model`` (compiled) from ``initial_epoch`` to ``epochs`` on ``train_feed``,
    validating on ``val_feed`` after every epoch (None: the callbacks validate, see
    :func:`epoch_validation`), with ``callbacks``; pipeline errors come
    out as one-line AugmineErrors. ``progress``: Keras' bars when stdout is a terminal.
    The feeds shuffle themselves. On TensorFlow the train step is traced once per input
    signature, and a kept model's (:mod:`augmine.train.evaluation`) is reused while it was
    traced with the same optimizer, schedule and trainable set. Returns the Keras History."""
    from augmine.feed.feeds import pipeline_errors
    from augmine.train.evaluation import build_step_state, reuses_models, same_steps

    build_step_state(model, train_feed)
    callbacks = [*callbacks, *([same_steps()] if reuses_models() else [])]
    with pipeline_errors():
        return model.fit(train_feed, validation_data=val_feed, epochs=epochs,
                         initial_epoch=initial_epoch, callbacks=callbacks,
                         verbose=1 if show_bars(progress) else 0, class_weight=class_weight,
                         shuffle=False)
