"""``strategy: multi-worker``: one run trained by several processes, on one host or many.

Each process is started by hand (or a launcher) with the backend's own environment:

- TensorFlow: ``TF_CONFIG`` (``{"cluster": {"worker": ["host0:port", ...]}, "task":
  {"type": "worker", "index": i}}``), read by ``tf.distribute.MultiWorkerMirroredStrategy``;
  one device per process (one process per GPU, ``CUDA_VISIBLE_DEVICES``).
- JAX: ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator ``host:port`` first),
  ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID``, read by
  ``keras.distribution.initialize`` (``jax.distributed.initialize``; gloo collectives on
  CPU); the model is replicated with ``keras.distribution.DataParallel`` over every
  process's devices.

Process 0 is the chief. Every process reads its own disjoint part of every epoch
(:mod:`augmine.feed.shards`), and only the chief writes the run folder: the others write
into a private scratch copy (what Keras asks of MultiWorkerMirroredStrategy's non-chief
workers), deleted when they exit. On resume every process reads the run folder's
``state.json`` and ``last.keras`` (the folder must be on storage all hosts share).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import tempfile

from augmine.core.errors import AugmineError
from augmine.core.runtime import import_keras, keras_backend
from augmine.feed.shards import Shard
from augmine.runs.rundir import RunDir

log = logging.getLogger("augmine")

MULTI_WORKER = "multi-worker"
JAX_ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
           "KERAS_DISTRIBUTION_PROCESS_ID")
DOCS = "see docs/backends.md#several-machines-multi-worker"

_shard: Shard | None = None       # this process's place, once its engine started


def cluster_from_env(backend: str | None = None, env=None) -> Shard:
    """This process's :class:`~augmine.feed.shards.Shard` from the launch environment of
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
