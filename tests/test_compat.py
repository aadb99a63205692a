"""augmine/core/compat.py: each patch of code augmine does not own is applied, does what it
claims, and refuses (one line naming package, version and range) outside the versions it was
written for. The multi-worker Keras patch under a real two-process cluster:
test_multiworker.py::test_two_processes_on_tensorflow."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from augmine.core import compat
from augmine.core.errors import AugmineError
from support import PYTEST_PRIVATE, fixture_definitions, subprocess_env


@pytest.mark.parametrize("name,version", [
    ("keras-multi-worker", "3.16.0"), ("keras-multi-worker", "3.14.2"),
    ("spawn-without-main", "3.14.0"), ("forkserver-started", "3.9.18"),
    ("tf-data-service-private", "2.22.0"), ("albumentations-without-torch", "2.0.9"),
])
def test_each_patch_refuses_a_version_outside_its_range(name, version):
    patch = compat.PATCHES[name]
    with pytest.raises(AugmineError) as err:
        compat.require(name, version)
    line = str(err.value)
    assert line.startswith(f"{patch.package} {version} is outside {patch.versions}, ")
    assert patch.what in line and "augmine/core/compat.py" in line and "\n" not in line


def test_the_installed_versions_are_inside_every_range():
    for name in compat.PATCHES:
        compat.require(name)                 # this environment is what the patches were written for


@pytest.mark.tensorflow
def test_keras_multi_worker_patch_is_applied_once_and_keeps_single_process_training():
    from augmine.core.runtime import import_keras, import_tensorflow

    keras, tf = import_keras(), import_tensorflow()
    from keras.src.backend.tensorflow import trainer

    compat.fix_keras_multi_worker()
    patched = (trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica)
    assert trainer._augmine_fixed
    assert {f.__module__ for f in patched} == {"augmine.core.compat"}
    compat.fix_keras_multi_worker()          # idempotent: not wrapped twice
    assert (trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica) == patched
    # outside multi-worker mode Keras' own code runs: the mean of a value is itself
    logs = trainer.reduce_per_replica({"loss": tf.constant(2.5)}, tf.distribute.get_strategy(),
                                      "auto")
    assert float(logs["loss"]) == 2.5
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    history = model.fit(tf.zeros((4, 3)), tf.zeros((4,), tf.int32), epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=subprocess_env(), timeout=120)


def test_a_child_started_without_main_never_runs_the_parents_script(tmp_path):
    """A script without a main guard that starts a spawn child: multiprocessing would run
    the script again in the child (and fail); started through the patch, it does not."""
    script = tmp_path / "no_guard.py"
    script.write_text("import multiprocessing, sys\n"
                      "from multiprocessing import spawn\n"
                      "from augmine.core.compat import start_without_main\n"
                      "print('script ran', flush=True)\n"
                      "child = multiprocessing.get_context('spawn').Process(target=sys.exit, "
                      "args=(0,))\n"
                      "start_without_main([child])\n"
                      "child.join()\n"
                      "print('child exit', child.exitcode, spawn.get_preparation_data.__module__)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env=subprocess_env(), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["script ran", "child exit 0 augmine.core.compat"]


def test_forkserver_started_tells_whether_the_fork_server_runs():
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this platform")
    out = _run("import multiprocessing, sys\n"
               "from augmine.core.compat import forkserver_started\n"
               "before = forkserver_started()\n"
               "child = multiprocessing.get_context('forkserver').Process(target=sys.exit, "
               "args=(0,))\n"
               "child.start(); child.join()\n"
               "print(before, forkserver_started(), child.exitcode)\n")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "True", "0"]


@pytest.mark.tensorflow
def test_tf_data_service_private_names_give_the_worker_address_and_count():
    from augmine.core.runtime import import_tensorflow

    service = import_tensorflow().data.experimental.service
    dispatcher = service.DispatchServer(service.DispatcherConfig(port=0))
    worker = service.WorkerServer(service.WorkerConfig(
        dispatcher_address=dispatcher.target.split("://")[1], worker_address="127.0.0.1:%port%",
        port=0))
    host, port = compat.worker_address(worker).rsplit(":", 1)
    assert host in ("localhost", "127.0.0.1") and 0 < int(port) < 65536
    deadline = time.monotonic() + 60
    while compat.registered_workers(dispatcher) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)                     # polled: the worker's first heartbeat
    assert compat.registered_workers(dispatcher) == 1


def test_pytest_private_fixture_info_is_read_inside_its_range_only(request, tmp_path):
    assert fixture_definitions(request.node)["tmp_path"][-1].scope == "function"
    with pytest.raises(AugmineError, match=r"^pytest 9\.2\.0 is outside " + PYTEST_PRIVATE):
        fixture_definitions(request.node, "9.2.0")


def test_feed_workers_load_albumentations_without_its_pytorch_part():
    """The fork server's first import refuses `albumentations.pytorch` (which would import
    torch), so albumentations loads without it; `allow_torch` lifts the refusal."""
    out = _run("import importlib, sys\n"
               "import augmine.feed.worker_boot\n"
               "import albumentations\n"
               "print('albumentations.pytorch' in sys.modules)\n"
               "try:\n"
               "    importlib.import_module('albumentations.pytorch')\n"
               "except ImportError as exc:\n"
               "    print(exc)\n"
               "from augmine.core.compat import allow_torch\n"
               "allow_torch(); allow_torch()\n"
               "print(any('Albumentations' in type(f).__name__ for f in sys.meta_path))\n")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [
        "False", "albumentations.pytorch is not loaded in augmine pipeline workers", "False"]
