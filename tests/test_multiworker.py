"""``strategy: multi-worker``: the shard of every epoch each process reads (pure), the launch
environment, and two real processes on localhost CPU per backend (killed after one epoch,
then resumed), whose shards must cover each epoch once and whose run folder must be one
consistent run written by process 0."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import tiny_config

from augmine.core.errors import AugmineError
from augmine.feed.sampling import Shard, shard_batches, shard_seeds, steps_per_epoch
from augmine.train.fit import cluster_from_env

HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------- shard math

@pytest.mark.parametrize("length,batch,count", [(48, 16, 2), (50, 16, 2), (49, 16, 2),
                                                (33, 16, 2), (100, 12, 3), (65, 8, 4),
                                                (7, 4, 3), (3, 8, 3)])
@pytest.mark.parametrize("equal", [False, True])
def test_shards_cover_the_epoch_once_in_equal_steps(length, batch, count, equal):
    order = np.random.default_rng([length, batch]).permutation(length)
    parts = [shard_batches(order, batch, Shard(p, count, equal)) for p in range(count)]
    steps = steps_per_epoch(length, batch, Shard(0, count))
    assert all(len(mine) == steps for mine in parts)                  # nobody waits
    assert all(len(b) > 0 for mine in parts for b in mine)
    read = np.concatenate([b for mine in parts for b in mine])
    if not equal:                                   # disjoint and exactly the epoch
        assert sorted(read.tolist()) == list(range(length))
    else:                                           # same shape everywhere, nothing left out
        assert set(read.tolist()) == set(range(length))
        assert len(read) - length <= count - 1
        for k in range(steps):
            assert len({len(mine[k]) for mine in parts}) == 1
    for k in range(steps):                          # step k reads what one process would
        together = np.concatenate([mine[k] for mine in parts])
        whole = shard_batches(order, batch)
        expected = whole[k] if k < steps - 1 or steps == len(whole) else \
            np.concatenate(whole[k:])
        assert set(together.tolist()) == set(expected.tolist())


def test_one_process_reads_the_plain_epoch():
    order = np.arange(50)
    plain = shard_batches(order, 16)
    assert [len(b) for b in plain] == [16, 16, 16, 2]
    assert steps_per_epoch(50, 16) == 4 == steps_per_epoch(50, 16, Shard(0, 1))
    assert [b.tolist() for b in shard_batches(order, 16, Shard(0, 1))] == \
        [b.tolist() for b in plain]
    assert steps_per_epoch(49, 16, Shard(0, 2)) == 3       # a 1-sample tail joins step 3


def test_shard_seeds_are_seeded_and_differ_per_process():
    seeds = [11, 12, 13]
    assert shard_seeds(seeds) == seeds
    a, b = shard_seeds(seeds, Shard(0, 2)), shard_seeds(seeds, Shard(1, 2))
    assert a == shard_seeds(seeds, Shard(0, 2)) and a != b


def test_shard_errors_are_one_line():
    with pytest.raises(AugmineError, match="cannot be split among 3"):
        shard_batches(np.arange(2), 8, Shard(0, 3))
    with pytest.raises(AugmineError, match="process 2 of 2"):
        Shard(2, 2)


# --------------------------------------------------------------------------- environment

def test_cluster_from_the_launch_environment():
    conf = {"cluster": {"worker": ["h0:1", "h1:1", "h2:1"]}, "task": {"type": "worker",
                                                                       "index": 2}}
    assert cluster_from_env("tensorflow", {"TF_CONFIG": json.dumps(conf)}) == Shard(2, 3)
    conf = {"cluster": {"chief": ["h0:1"], "worker": ["h1:1"]}, "task": {"type": "worker",
                                                                          "index": 0}}
    assert cluster_from_env("tensorflow", {"TF_CONFIG": json.dumps(conf)}) == Shard(1, 2)
    env = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "h0:1234", "KERAS_DISTRIBUTION_NUM_PROCESSES":
           "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1"}
    assert cluster_from_env("jax", env) == Shard(1, 2, equal_sizes=True)
    with pytest.raises(AugmineError, match="TF_CONFIG is not set"):
        cluster_from_env("tensorflow", {})
    with pytest.raises(AugmineError, match="KERAS_DISTRIBUTION_PROCESS_ID not set"):
        cluster_from_env("jax", {k: v for k, v in env.items() if "PROCESS_ID" not in k})
    with pytest.raises(AugmineError, match="TensorFlow or JAX"):
        cluster_from_env("torch", env)


def test_multi_worker_without_its_environment_names_it_and_writes_nothing(
        tmp_path, synth_root, monkeypatch):
    from augmine.core.runtime import keras_backend
    from augmine.train.phases import train_run

    for name in ("TF_CONFIG", "KERAS_DISTRIBUTION_JOB_ADDRESSES",
                 "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    missing = "TF_CONFIG" if keras_backend() == "tensorflow" else "KERAS_DISTRIBUTION_"
    with pytest.raises(AugmineError, match=missing) as err:
        train_run(tiny_config(strategy="multi-worker"), synth_root, tmp_path / "run")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- two processes

def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _launch(backend: str, folder: Path, data: Path, launch: str, stop_after: int,
            resume: bool) -> None:
    """Start the two processes of one launch and wait for both."""
    ports = _free_ports(2)
    procs, logs = [], []
    for p in range(2):
        env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="",
                   JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(
                       [str(HERE.parent)] + [x for x in os.environ.get("PYTHONPATH", "")
                                             .split(os.pathsep) if x]))
        if backend == "tensorflow":
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{q}"
                                                                  for q in ports]},
                                           "task": {"type": "worker", "index": p}})
        else:      # the resumed launch reuses the first one's compiled steps (most of its time)
            env.update(KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{ports[0]}",
                       KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                       KERAS_DISTRIBUTION_PROCESS_ID=str(p),
                       JAX_COMPILATION_CACHE_DIR=str(folder / "jax-cache"),
                       JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
        logs.append(folder / f"{launch}-{p}.log")
        procs.append(subprocess.Popen(
            [sys.executable, str(HERE / "multiworker_process.py"), str(folder / "train.yaml"),
             str(data), str(folder / "run"), str(folder / f"{launch}-{p}.json"),
             str(stop_after), "1" if resume else "0"],
            env=env, stdout=logs[-1].open("w"), stderr=subprocess.STDOUT))
    try:
        codes = [proc.wait(timeout=900) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    expected = [3, 3] if stop_after else [0, 0]
    assert codes == expected, "\n".join(log.read_text()[-3000:] for log in logs)


def _check_run(folder: Path, train_count: int) -> None:
    # Every epoch: both processes saw the same order and together read it once, in the
    # same number of steps.
    for launch in ("first", "resumed"):
        mine = [json.loads((folder / f"{launch}-{p}.json").read_text()) for p in range(2)]
        assert len(mine[0]) == len(mine[1]) >= 1
        for a, b in zip(*mine):
            assert a["order"] == b["order"]
            assert len(a["read"]) == len(b["read"])
            read = sum(a["read"], []) + sum(b["read"], [])
            assert sorted(read) == sorted(a["order"]) == list(range(train_count))
    first = json.loads((folder / "first-0.json").read_text())[0]["order"]
    resumed = json.loads((folder / "resumed-0.json").read_text())[0]["order"]
    assert first != resumed                         # the resumed launch read epoch 2
    # One run folder, written by process 0 only: two epochs, one state, one report.
    run = folder / "run"
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "done" and state["epochs_done"] == 2
    assert state["step"] == 2 * steps_per_epoch(train_count, 16, Shard(0, 2))
    with (run / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert (run / "checkpoints" / "last.keras").is_file()
    report = json.loads((run / "reports" / "phase-1" / "report.json").read_text())
    assert report["accuracy"] == pytest.approx(float(rows[-1]["val_accuracy"]), abs=1e-6)
    assert not list(run.rglob("*.tmp"))


def _two_process_run(backend: str, tmp_path: Path) -> None:
    from augmine.data.synth import write_synthetic_dataset

    data = tmp_path / "data"
    write_synthetic_dataset(data, num_classes=4, train_per_class=12, val_per_class=4, seed=0)
    cfg = tiny_config(strategy="multi-worker", batch_size=16,
                      phases=[{"size": 16, "epochs": 2, "recipe": "none"}])
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    _launch(backend, tmp_path, data, "first", stop_after=1, resume=False)
    _launch(backend, tmp_path, data, "resumed", stop_after=0, resume=True)
    _check_run(tmp_path, train_count=48)


@pytest.mark.slow
@pytest.mark.tensorflow
def test_two_processes_on_tensorflow(tmp_path):
    """MultiWorkerMirroredStrategy from TF_CONFIG, two workers on localhost CPU."""
    _two_process_run("tensorflow", tmp_path)


@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.jax
def test_two_processes_on_jax(tmp_path):
    """jax.distributed (keras.distribution.initialize) on localhost CPU, gloo collectives
    (in the JAX job)."""
    _two_process_run("jax", tmp_path)
