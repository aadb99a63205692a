"""The tf.data service on one machine: a dispatcher and worker processes on 127.0.0.1.

The tf.data service is how an input pipeline scales past one machine: a *dispatcher*
hands out work, *workers* (other processes, other hosts) run the dataset's graph and
stream finished batches back to the trainer over gRPC. :func:`start_local_service`
starts a dispatcher in this process and ``num_workers`` ``WorkerServer``s, each in its own
``spawn``-ed process (so they run in parallel, not under one GIL); the same
:func:`distribute` call works unchanged against a remote dispatcher's ``grpc://`` address.

What the service can run, and what it cannot (measured, see ``tests/test_service.py``):
the service ships the dataset as a *serialized graph* to the workers. augmine's
albumentations pipeline (:func:`augmine.feed.feeds.train_dataset`) is a
``Dataset.from_generator`` over Python worker processes; its graph holds only a token
that names a Python function living in *this* process, so a worker in another process
fails with ``could not find registered callback`` / ``PyFunc`` errors. No Python code
(albumentations, ``tf.numpy_function``, ``tf.py_function``) can cross to a remote worker.

So the trade-off is:

- albumentations recipes (all 14-transform recipes, oversampling plans, per-class
  recipes, seeded batches) run through :mod:`augmine.feed.workers`' worker processes: every
  core of *one* machine;
- the service path runs :func:`service_dataset`, a graph-only pipeline (``tf.io``
  read + JPEG decode, ``tf.image`` random crop, flip, brightness, contrast, resize,
  uint8 out) that any number of local or remote workers can execute. It does
  not apply recipes or oversampling plans.

Measured on the shared 2-core machine (load average 3.5-5, i.e. other jobs running), 2,500
real 64 px images, batch 128, ``distributed_epoch``: the graph-only pipeline runs at about
2,800 images/s in-process without the service; through the service, streaming runs at about
2,200-2,700 images/s with 1 worker and 1,900-2,400 with 2, plus about 1 s per epoch for the
job's start and end-of-epoch handshake (so about 1,200-1,900 images/s per short epoch).
A second worker cannot help on 2 cores: one worker's tf.data threads already use both.
The service pays off with more cores or more machines, not here.

Security: the dispatcher and workers bind gRPC ports on all interfaces without
authentication (TensorFlow offers no host option); run them only on trusted networks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import time
from typing import Any

import numpy as np

from augmine.core.compat import registered_workers, worker_address
from augmine.core.errors import AugmineError

log = logging.getLogger("augmine")

PROCESSING_MODES = ("parallel_epochs", "distributed_epoch")
HOST = "127.0.0.1"
START_TIMEOUT_S = 180.0        # a spawned worker imports TensorFlow: seconds on a busy 2-core box
_POLL_S = 0.5


# --------------------------------------------------------------------------- worker process

def _worker_main(dispatcher_address: str, number: int, ready, stop) -> None:
    """Run one ``WorkerServer`` until ``stop`` is set or the parent process dies."""
    import multiprocessing as mp

    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent stops us on Ctrl-C
    parent = mp.parent_process()
    try:
        from augmine.core.runtime import import_tensorflow

        tf = import_tensorflow()
        config = tf.data.experimental.service.WorkerConfig(
            dispatcher_address=dispatcher_address, worker_address=f"{HOST}:%port%", port=0)
        worker = tf.data.experimental.service.WorkerServer(config)
        ready.put((number, True, worker_address(worker)))
    except BaseException as exc:  # noqa: BLE001 - report anything to the parent
        ready.put((number, False, f"{type(exc).__name__}: {exc}"))
        return
    while not stop.wait(_POLL_S):
        if parent is not None and not parent.is_alive():   # main gone: never linger
            break
    # Skip TensorFlow's interpreter teardown: gRPC threads can make it hang for seconds.
    os._exit(0)


# --------------------------------------------------------------------------- service

class LocalService:
    """A running dispatcher (in this process) and worker processes on 127.0.0.1.

    ``target``: the dispatcher's address, ``"grpc://127.0.0.1:PORT"``, for :func:`distribute`;
    ``worker_addresses``: ``["127.0.0.1:PORT", ...]``; ``processes``: the worker processes.
    ``stop()`` (or leaving a ``with`` block) ends the workers and the dispatcher; it is
    idempotent and also runs when the object is garbage-collected or Python exits.
    """

    def __init__(self, dispatcher, port: int, processes: list, stop_event, worker_addresses):
        self._dispatcher = dispatcher
        self.port = port
        self.target = f"grpc://{HOST}:{port}"
        self.processes = processes
        self.worker_addresses = worker_addresses
        self._stop_event = stop_event
        self._stopped = False
        import weakref

        self._finalizer = weakref.finalize(self, _shutdown, dispatcher, processes, stop_event)

    @property
    def num_workers(self) -> int:
        return len(self.processes)

    def stop(self) -> None:
        """Stop the workers (join, then terminate/kill what is left) and the dispatcher."""
        self._stopped = True
        self._finalizer()

    def __enter__(self) -> "LocalService":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running"
        return f"LocalService(target={self.target!r}, num_workers={self.num_workers}, {state})"


def _shutdown(dispatcher, processes: list, stop_event) -> None:
    with contextlib.suppress(Exception):
        stop_event.set()
    for p in processes:
        if p.pid is not None:
            p.join(timeout=5.0)
    for p in processes:
        if p.pid is not None and p.exitcode is None:
            p.terminate()
            p.join(timeout=2.0)
            if p.exitcode is None:
                p.kill()
                p.join(timeout=1.0)
    if dispatcher is not None:
        with contextlib.suppress(Exception):
            dispatcher._stop()


def start_local_service(num_workers: int = 2, port: int = 0,
                        timeout: float = START_TIMEOUT_S) -> LocalService:
    """Start a tf.data service dispatcher and ``num_workers`` worker processes on 127.0.0.1.

    ``num_workers``: worker processes (>= 1), each a spawned Python process running one
    ``WorkerServer`` (each imports TensorFlow: about 3-10 s to start on a small machine);
    ``port``: the dispatcher's port, 0 = any free port. Returns once every worker has
    registered with the dispatcher. Returns a :class:`LocalService` (``.target``,
    ``.stop()``, context manager). Raises :class:`AugmineError` for bad arguments or when a
    worker fails to start.
    """
    import multiprocessing as mp

    if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) \
            or num_workers < 1:
        raise AugmineError(f"start_local_service: num_workers={num_workers!r}; use 1 or more "
                           "worker processes")
    if isinstance(port, bool) or not isinstance(port, (int, np.integer)) \
            or not 0 <= port <= 65535:
        raise AugmineError(f"start_local_service: port={port!r}; use 0 (any free port) or a "
                           "port number from 1 to 65535")
    from augmine.core.runtime import import_tensorflow

    tf = import_tensorflow()
    try:
        dispatcher = tf.data.experimental.service.DispatchServer(
            tf.data.experimental.service.DispatcherConfig(port=int(port)))
    except Exception as exc:  # e.g. the port is taken
        raise AugmineError(f"start_local_service: cannot start the dispatcher on port {port} "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                           "use port=0 or a free port") from None
    real_port = int(dispatcher.target.rsplit(":", 1)[1])     # grpc://localhost:PORT
    ctx = mp.get_context("spawn")    # never fork after TensorFlow is imported
    ready, stop_event = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_worker_main, name=f"augmine-tfdata-worker-{i}",
                         args=(f"{HOST}:{real_port}", i, ready, stop_event), daemon=True)
             for i in range(int(num_workers))]
    service = LocalService(dispatcher, real_port, procs, stop_event, [])
    try:
        for p in procs:
            p.start()
        addresses = {}
        deadline = time.monotonic() + timeout
        while len(addresses) < len(procs):
            try:
                number, ok, payload = ready.get(timeout=_POLL_S)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode is not None]
                if dead:
                    raise AugmineError(f"tf.data service worker {dead[0].name} exited with code "
                                       f"{dead[0].exitcode} while starting; run with --verbose "
                                       "to see TensorFlow's log") from None
                if time.monotonic() > deadline:
                    raise AugmineError(f"tf.data service workers did not start within {timeout:.0f} s; "
                                       "the machine may be overloaded: use fewer workers") from None
                continue
            if not ok:
                raise AugmineError(f"tf.data service worker {number} failed to start: {payload}")
            addresses[number] = f"{HOST}:{payload.rsplit(':', 1)[1]}"
        service.worker_addresses[:] = [addresses[i] for i in sorted(addresses)]
        # Wait until the dispatcher has seen every worker's first heartbeat, so that work is
        # spread over all of them from the first element.
        while registered_workers(dispatcher) < len(procs):
            if time.monotonic() > deadline:
                raise AugmineError(f"tf.data service: only {registered_workers(dispatcher)} of "
                                   f"{len(procs)} workers registered within {timeout:.0f} s")
            time.sleep(0.05)
    except BaseException:
        service.stop()
        raise
    finally:
        ready.cancel_join_thread()
        ready.close()
    log.info("tf.data service at %s with %d workers", service.target, len(procs))
    return service


# --------------------------------------------------------------------------- distribute

def _target_of(target: Any) -> str:
    target = getattr(target, "target", target)    # a LocalService works too
    if not isinstance(target, str) or not target.strip():
        raise AugmineError(f"distribute: target={target!r}; pass the dispatcher address such as "
                           "'grpc://127.0.0.1:5050' (LocalService.target)")
    return target.strip()


def distribute(dataset, target, job_name: str | None = None,
               processing_mode: str = "parallel_epochs", **kwargs):
    """Run ``dataset`` on the tf.data service at ``target`` (a thin wrapper).

    ``dataset``: a graph-only ``tf.data.Dataset`` (no ``from_generator``/``py_function``: the
    service ships the graph to other processes); ``target``: ``"grpc://host:port"`` or a
    :class:`LocalService`; ``job_name``: consumers sharing a name share one job;
    ``processing_mode``: ``"parallel_epochs"`` (each worker produces the whole dataset) or
    ``"distributed_epoch"`` (each source element goes to exactly one worker: one epoch
    overall). Other keyword arguments go to ``tf.data.experimental.service.distribute``.
    Returns the distributed dataset (same element spec; order across workers not kept).
    """
    if processing_mode not in PROCESSING_MODES:
        raise AugmineError(f"distribute: processing_mode={processing_mode!r}; use one of "
                           f"{', '.join(PROCESSING_MODES)}")
    service = _target_of(target)
    from augmine.core.runtime import import_tensorflow

    tf = import_tensorflow()
    if not isinstance(dataset, tf.data.Dataset):
        raise AugmineError(f"distribute: got {type(dataset).__name__}, not a tf.data.Dataset; "
                           "pass a dataset such as service_dataset(...)")
    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode=processing_mode, service=service, job_name=job_name, **kwargs))


# --------------------------------------------------------------------------- graph-only pipeline

CROP_FRACTION = 0.875      # train: random crop of 7/8 of each side (56 px of a 64 px image)
BRIGHTNESS_DELTA = 0.1     # train: brightness +- 0.1 on [0, 1] images
CONTRAST_RANGE = (0.8, 1.2)
SPLIT_CHUNK = 32           # samples per source element (one dispatcher RPC in distributed_epoch)
SHUFFLE_BUFFER = 1024      # train: per-worker shuffle buffer (samples)


def service_dataset(index, size: int, batch_size: int, seed: int | None = None,
                    split: str = "train"):
    """A graph-only pipeline the tf.data service can run on remote workers.

    ``index``: DatasetIndex; ``size``: output side in px; ``batch_size``; ``seed``: int or None;
    ``split``: ``"train"`` (shuffled each epoch; random crop of 7/8 of each side, resize,
    horizontal flip, brightness +-0.1, contrast 0.8-1.2) or ``"val"`` (file order, resize
    only). Images are read with ``tf.io.read_file`` and decoded with
    ``tf.io.decode_jpeg(channels=3)`` (grayscale -> 3 channels).
    Returns a ``tf.data.Dataset`` of ``(images uint8 (B, size, size, 3), labels int32 (B,))``
    (augmentation runs in float32, the result is rounded back to uint8: the model scales raw
    pixels itself), last partial batch kept: the element spec of
    :func:`augmine.feed.feeds.train_dataset`. Locally, a ``seed`` makes the batches
    reproducible (augmentation is keyed on the seed, the sample and its position in the
    epoch); through the service the split of work between workers is not reproducible.
    The source is ``from_tensor_slices`` over chunks of 32 sample ids (a fixed, seeded mix
    of classes), so ``distributed_epoch`` hands out 32 images per dispatcher request; each
    worker shuffles what it gets in a 1024-sample buffer.
    """
    from augmine.feed.feeds import check_batch_args
    from augmine.core.runtime import import_tensorflow

    size, batch_size = check_batch_args(size, batch_size)
    if split not in ("train", "val"):
        raise AugmineError(f"service_dataset: split={split!r}; use 'train' or 'val'")
    sp = index.split(split)
    if len(sp) == 0:
        raise AugmineError(f"{index.root}: split {split!r} has no images")
    tf = import_tensorflow()
    n = len(sp)
    paths = tf.constant([str(p) for p in sp.paths])
    labels = tf.constant(np.asarray(sp.labels, np.int32))
    # The source is sample ids in chunks of SPLIT_CHUNK: in ``distributed_epoch`` mode a worker
    # asks the dispatcher for one source element at a time, and one RPC per image halved the
    # rate (measured); a chunk per RPC removes that cost. Train chunks come from a shuffled
    # order so each holds many classes; -1 pads the last chunk and is filtered out.
    order = np.arange(n) if split == "val" else np.random.default_rng(seed).permutation(n)
    chunks = np.full(-(-n // SPLIT_CHUNK) * SPLIT_CHUNK, -1, np.int64)
    chunks[:n] = order
    ds = tf.data.Dataset.from_tensor_slices(chunks.reshape(-1, SPLIT_CHUNK)).unbatch()
    ds = ds.filter(lambda i: i >= 0)

    def load(i):
        img = tf.io.decode_jpeg(tf.io.read_file(tf.gather(paths, i)), channels=3)
        return tf.image.convert_image_dtype(img, tf.float32)      # uint8 -> [0, 1]

    def to_uint8(img):                                            # [0, 1] -> uint8, rounded
        return tf.cast(tf.round(tf.clip_by_value(img, 0.0, 1.0) * 255.0), tf.uint8)

    if split == "val":
        def prepare(i):
            img = tf.image.resize(load(i), (size, size), antialias=True)
            return to_uint8(img), tf.gather(labels, i)

        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    base = int(seed) if seed is not None else int(np.random.default_rng().integers(2**31))
    ds = ds.shuffle(min(n, SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
    # Position in the epoch: with the per-epoch reshuffle it gives each (sample, epoch) its own
    # augmentation seed. ``scan`` keeps a single source, which ``distributed_epoch`` needs.
    ds = ds.scan(tf.constant(0, tf.int64), lambda k, i: (k + 1, (i, k)))

    def augment(i, k):
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(base, tf.int64) * 1_000_003 + i, k]), num=4)
        img = load(i)
        shape = tf.shape(img)
        crop_h = tf.maximum(1, tf.cast(tf.cast(shape[0], tf.float32) * CROP_FRACTION, tf.int32))
        crop_w = tf.maximum(1, tf.cast(tf.cast(shape[1], tf.float32) * CROP_FRACTION, tf.int32))
        img = tf.image.stateless_random_crop(img, tf.stack([crop_h, crop_w, 3]), seed=seeds[0])
        img = tf.image.resize(img, (size, size), antialias=True)
        img = tf.image.stateless_random_flip_left_right(img, seed=seeds[1])
        img = tf.image.stateless_random_brightness(img, BRIGHTNESS_DELTA, seed=seeds[2])
        img = tf.image.stateless_random_contrast(img, *CONTRAST_RANGE, seed=seeds[3])
        return to_uint8(img), tf.gather(labels, i)

    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
