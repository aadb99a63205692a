"""The tf.data service on 127.0.0.1: a dispatcher, worker processes, the graph-only pipeline."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from augmine.core.errors import AugmineError

pytestmark = pytest.mark.tensorflow   # the tf.data service exists on TensorFlow only


@pytest.fixture(scope="module")
def local_service():
    """One dispatcher + two worker processes, shared by this module's tests (start costs seconds)."""
    from augmine.feed.service import start_local_service

    svc = start_local_service(num_workers=2)
    yield svc
    svc.stop()


def _collect(ds):
    xs, ys = [], []
    for x, y in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return xs, np.concatenate(ys)


@pytest.mark.slow
def test_two_workers_deliver_each_sample_once_in_distributed_epoch(local_service, synth_index):
    from augmine.feed.service import distribute, service_dataset

    assert local_service.target.startswith("grpc://127.0.0.1:")
    assert len(local_service.worker_addresses) == 2
    assert all(a.startswith("127.0.0.1:") for a in local_service.worker_addresses)
    ds = distribute(service_dataset(synth_index, 16, 32, seed=0), local_service.target,
                    processing_mode="distributed_epoch")
    xs, labels = _collect(ds)
    want = collections.Counter(synth_index.train.labels.tolist())
    assert collections.Counter(labels.tolist()) == want      # every sample exactly once
    assert labels.dtype == np.int32
    for x in xs:
        assert x.dtype == np.uint8 and x.shape[1:] == (16, 16, 3) and 1 <= len(x) <= 32
    assert max(int(x.max()) for x in xs) > 128       # real pixels, not zeros


@pytest.mark.slow
def test_val_split_through_the_service_keeps_every_sample(local_service, synth_index):
    from augmine.feed.service import distribute, service_dataset

    ds = distribute(service_dataset(synth_index, 32, 16, split="val"), local_service,
                    processing_mode="distributed_epoch", job_name="val-once")
    xs, labels = _collect(ds)
    assert sorted(labels.tolist()) == sorted(synth_index.val.labels.tolist())
    assert all(x.shape[1:] == (32, 32, 3) for x in xs)


@pytest.mark.slow
def test_parallel_epochs_gives_each_worker_a_full_epoch(local_service, synth_index):
    from augmine.feed.service import distribute, service_dataset

    n = len(synth_index.val)
    ds = distribute(service_dataset(synth_index, 16, 25, split="val"), local_service,
                    processing_mode="parallel_epochs")
    # Each of the two workers produces the whole (finite) dataset: two epochs in all.
    _, labels = _collect(ds)
    assert len(labels) == 2 * n
    assert collections.Counter(labels.tolist()) == collections.Counter(
        np.tile(synth_index.val.labels, 2).tolist())


def test_service_dataset_locally_real_images_and_seed(real_index):
    from augmine.feed.service import service_dataset

    a = service_dataset(real_index, 32, 64, seed=3)
    xa, ya = next(iter(a))
    assert xa.shape == (64, 32, 32, 3) and xa.dtype.name == "uint8" and ya.dtype.name == "int32"
    assert int(xa.numpy().max()) > 128 and xa.numpy().std() > 10   # real, varied pixels
    # The same element spec as augmine.feed.feeds' feed, so one model takes both.
    from augmine.feed.feeds import train_dataset

    assert a.element_spec == train_dataset(real_index, "none", 32, 64, workers=0).element_spec
    xb, yb = next(iter(service_dataset(real_index, 32, 64, seed=3)))
    np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    np.testing.assert_allclose(xa.numpy(), xb.numpy())
    # Second epoch of one dataset: reshuffled, new augmentation.
    it = iter(a)
    _ = next(it)
    second = next(iter(a))[1].numpy()
    assert not np.array_equal(second, ya.numpy())
    # Validation: file order and label alignment, as eval_dataset.
    _, yv = _collect(service_dataset(real_index, 16, 100, split="val"))
    np.testing.assert_array_equal(yv, real_index.val.labels)


@pytest.mark.slow
def test_stop_leaves_no_processes_and_is_idempotent():
    from augmine.feed.service import start_local_service

    with start_local_service(num_workers=1) as svc:
        procs = list(svc.processes)
        assert all(p.is_alive() for p in procs)
    assert all(not p.is_alive() and p.exitcode is not None for p in procs)
    svc.stop()        # a second stop is harmless
    assert "stopped" in repr(svc)


@pytest.mark.slow
def test_albumentations_pipeline_cannot_run_on_remote_workers(local_service, synth_index):
    """Documented limit: from_generator (Python code) cannot be shipped to worker processes."""
    from augmine.feed.feeds import train_dataset
    from augmine.core.runtime import import_tensorflow
    from augmine.feed.service import distribute

    tf = import_tensorflow()
    ds = distribute(train_dataset(synth_index, "none", 16, 8, workers=0), local_service)
    with pytest.raises(tf.errors.OpError, match="callback"):
        next(iter(ds))


@pytest.mark.parametrize("kwargs, words", [
    ({"num_workers": 0}, "num_workers=0"),
    ({"num_workers": 2.5}, "num_workers=2.5"),
    ({"port": 70000}, "port=70000"),
    ({"port": -1}, "port=-1"),
])
def test_bad_service_arguments_are_one_line_errors(kwargs, words):
    from augmine.feed.service import start_local_service

    with pytest.raises(AugmineError, match=words) as err:
        start_local_service(**kwargs)
    assert "\n" not in str(err.value)


def test_bad_distribute_and_dataset_arguments(synth_index):
    from augmine.feed.service import distribute, service_dataset

    with pytest.raises(AugmineError, match="processing_mode='epochs'"):
        distribute(None, "grpc://127.0.0.1:1", processing_mode="epochs")
    with pytest.raises(AugmineError, match="target"):
        distribute(None, "")
    with pytest.raises(AugmineError, match="not a tf.data.Dataset"):
        distribute([1, 2], "grpc://127.0.0.1:1")
    with pytest.raises(AugmineError, match="split='test'"):
        service_dataset(synth_index, 16, 8, split="test")
    with pytest.raises(AugmineError, match="batch size"):
        service_dataset(synth_index, 16, 0)
