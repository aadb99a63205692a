"""Shared fixtures: a small generated dataset and the real Tiny-ImageNet sample."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from support import BLOCKER, MINING, blocker_site, copy_run, fixture_definitions, write_config

REPO = Path(__file__).resolve().parents[1]
# The real sample lives in ../shared beside the checkout; AUGMINE_SAMPLE overrides.
REAL_SAMPLE = Path(os.environ.get(
    "AUGMINE_SAMPLE", REPO.parent / "shared" / "data" / "tiny-imagenet-sample"))

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# JAX compiles the train/predict steps of every new model afresh, and the tests build the
# same few tiny models many times: a persistent compilation cache for the session (and the
# JAX subprocesses it starts) turns each repeat into a cache hit. Set before JAX is imported;
# removed at the end of the session (pytest_unconfigure).
_JAX_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _JAX_CACHE = tempfile.mkdtemp(prefix="augmine-jax-cache-")
    os.environ.update(JAX_COMPILATION_CACHE_DIR=_JAX_CACHE,
                      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def pytest_unconfigure(config):
    if _JAX_CACHE is not None:
        shutil.rmtree(_JAX_CACHE, ignore_errors=True)


# ``AUGMINE_BLOCK_TENSORFLOW=1`` (the JAX and PyTorch jobs in .ci/run) makes ``import
# tensorflow`` fail in this process and in every subprocess a test starts (the blocker of
# support.py as a sitecustomize on PYTHONPATH), proving that those backends never need it.
BLOCK_TF = os.environ.get("AUGMINE_BLOCK_TENSORFLOW") == "1"
if BLOCK_TF:
    import sys

    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(blocker_site())] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    exec(compile(BLOCKER, "augmine-no-tf", "exec"))  # this process too
    assert "tensorflow" not in sys.modules, "tensorflow was imported before conftest"


# The README runs the suite in three processes (pytest-xdist ``-n 3``; ``--dist loadgroup`` in
# setup.cfg). The session's shared data and runs (below) are built once for all of them
# (built_once); a test that uses a module-scoped fixture is put in its module's xdist group,
# so that fixture is built in one process only.
def _xdist_group(item) -> str | None:
    defs = fixture_definitions(item)    # pytest's private fixture info, version-checked
    if any(d.scope == "module" for name in item.fixturenames for d in defs.get(name, ())):
        return item.module.__name__
    return None


def built_once(tmp_path_factory, name: str, build) -> Path:
    """``tmp/shared-<name>``, filled by ``build(folder)`` once per test session: under
    pytest-xdist the first worker to ask builds it while holding a lock, the others wait
    for it and reuse it (the pattern of pytest-xdist's docs, "Making session-scoped fixtures
    execute only once"). A build that failed is tried again by the next worker to ask."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent                      # the session's folder, shared by its workers
    folder, done = base / f"shared-{name}", base / f"shared-{name}.done"
    with open(base / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.hookimpl(tryfirst=True)      # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Group tests that share an expensive fixture (above); skip tests marked
    ``tensorflow`` unless the Keras backend is TensorFlow, and ``jax`` unless it is JAX."""
    from augmine.core.runtime import keras_backend

    for item in items:
        group = _xdist_group(item)
        if group and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))
    backend = "blocked" if BLOCK_TF and keras_backend() == "tensorflow" else keras_backend()
    for needs in ("tensorflow", "jax"):
        if backend != needs:
            skip = pytest.mark.skip(reason=f"needs the {needs} backend (backend: {backend})")
            for item in items:
                if item.get_closest_marker(needs) is not None:
                    item.add_marker(skip)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A generated 10-class dataset (40 train + 10 val per class) in the Tiny-ImageNet layout
    (one for the session: tests that change it work on a copy)."""
    from augmine.data.synth import write_synthetic_dataset

    def build(folder):
        write_synthetic_dataset(folder / "data", num_classes=10, train_per_class=40,
                                val_per_class=10, seed=0)

    return built_once(tmp_path_factory, "synth", build) / "data"


@pytest.fixture(scope="session")
def real_root() -> Path:
    """The real Tiny-ImageNet sample from ../shared; the test is skipped when it is absent."""
    if not (REAL_SAMPLE / "wnids.txt").exists():
        pytest.skip(f"real Tiny-ImageNet sample not found at {REAL_SAMPLE}")
    return REAL_SAMPLE


@pytest.fixture(scope="session")
def synth_index(synth_root):
    from augmine.data.dataset import load_index

    return load_index(synth_root)


@pytest.fixture(scope="session")
def real_index(real_root):
    from augmine.data.dataset import load_index

    return load_index(real_root)


# --------------------------------------------------------------------------- shared runs
# Trained once per session (built_once: in one of the xdist workers, the others reuse it); a
# test that changes one works on copy_run(run, tmp_path).

@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, synth_root):
    """support.TINY trained on ``synth_root``: one epoch at each of 16 (presized), 32 and
    64 px, a report per phase (a ``train.phases.RunResult``, read back from the folder)."""
    from augmine.runs.rundir import RunDir
    from augmine.train.phases import RunResult, train_run
    from support import TINY

    def build(folder):
        phases = [{**TINY["phases"][0], "presize": True}, *TINY["phases"][1:]]
        train_run(write_config(folder, phases=phases), synth_root, folder / "run",
                  progress=False)

    run = RunDir(built_once(tmp_path_factory, "trained", build) / "run")
    return RunResult(run, run.read_state(), run.read_history())


@pytest.fixture(scope="session")
def mining_run(tmp_path_factory, synth_root) -> Path:
    """A run of support.MINING (15 epochs at 16 px, where the planted pairs are confused),
    ready for a mining round: keep it unchanged, copy it to run rounds."""
    from augmine.train.phases import train_run

    def build(folder):
        train_run(write_config(folder, **MINING), synth_root, folder / "run", progress=False)

    return built_once(tmp_path_factory, "mining", build) / "run"


@pytest.fixture(scope="session")
def round_run(tmp_path_factory, mining_run):
    """``mining_run`` after ``augmine mine round RUN``: round 1 (oversample x3 of the 2
    weakest classes, 2 epochs) and its control done; ``.run`` the folder, ``.output`` what
    the command printed."""
    from types import SimpleNamespace

    from click.testing import CliRunner

    from augmine.cli import cli

    def build(folder):
        run = copy_run(mining_run, folder)
        res = CliRunner().invoke(cli, ["mine", "round", str(run), "--no-progress"])
        assert res.exit_code == 0, res.output
        (folder / "output.txt").write_text(res.output)

    folder = built_once(tmp_path_factory, "round", build)
    return SimpleNamespace(run=folder / "run", output=(folder / "output.txt").read_text())


@pytest.fixture
def augmine_on_path(monkeypatch):
    """This installation's ``augmine`` script first on PATH, as in an activated environment:
    the commands augmine prints then start with plain ``augmine``."""
    from support import augmine_command

    script = Path(augmine_command()[0])
    if script.name == "augmine":
        monkeypatch.setenv("PATH", os.pathsep.join([str(script.parent),
                                                    os.environ.get("PATH", "")]))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``augmine demo --config DEMO`` (support.DEMO: the tiny model, 1 epoch a phase and a
    1-epoch round) on a generated 6-class set with one truncated train JPEG and one fake val
    JPEG: ``.refused`` is the run without ``--skip-bad`` (``.trained_when_refused``: whether
    it made checkpoints), ``.result`` the one with it (each with the ``exit_code`` and
    ``output`` of click's Result); ``.args`` that command, ``.bad`` the two files (relative
    to ``.data``), ``.config`` the config file."""
    import json
    from types import SimpleNamespace

    import yaml
    from click.testing import CliRunner

    from augmine.cli import cli
    from augmine.data.synth import write_synthetic_dataset
    from support import DEMO, spoil

    def paths(folder):
        data, out, config = folder / "data", folder / "demo", folder / "demo.yaml"
        return data, out, config, ["demo", "--out", str(out), "--data", str(data),
                                   "--config", str(config)]

    def build(folder):
        data, out, config, args = paths(folder)
        write_synthetic_dataset(data, num_classes=6, train_per_class=40, val_per_class=10,
                                seed=3)
        config.write_text(yaml.safe_dump(DEMO, sort_keys=False))
        bad = spoil(data)
        refused = CliRunner().invoke(cli, args)
        trained_when_refused = (out / "checkpoints").exists()
        result = CliRunner().invoke(cli, args + ["--skip-bad"])
        (folder / "demo_run.json").write_text(json.dumps({
            "bad": bad, "trained_when_refused": trained_when_refused,
            "refused": {"exit_code": refused.exit_code, "output": refused.output},
            "result": {"exit_code": result.exit_code, "output": result.output}}))

    folder = built_once(tmp_path_factory, "demo", build)
    data, out, config, args = paths(folder)
    made = json.loads((folder / "demo_run.json").read_text())
    return SimpleNamespace(data=data, out=out, config=config, args=args + ["--skip-bad"],
                           bad=tuple(made["bad"]), trained_when_refused=made["trained_when_refused"],
                           refused=SimpleNamespace(**made["refused"]),
                           result=SimpleNamespace(**made["result"]))
