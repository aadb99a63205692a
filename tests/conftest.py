"""Shared fixtures: a small generated dataset and the real Tiny-ImageNet sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import BLOCKER, MINING, blocker_site, copy_run, write_config

REPO = Path(__file__).resolve().parents[1]
# The real sample lives in ../shared beside the checkout; AUGMINE_SAMPLE overrides.
REAL_SAMPLE = Path(os.environ.get(
    "AUGMINE_SAMPLE", REPO.parent / "shared" / "data" / "tiny-imagenet-sample"))

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``tensorflow`` when the Keras backend is not TensorFlow."""
    from augmine.core.runtime import keras_backend

    if keras_backend() == "tensorflow" and not BLOCK_TF:
        return
    skip = pytest.mark.skip(reason=f"needs the TensorFlow backend (backend: {keras_backend()})")
    for item in items:
        if "tensorflow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A generated 10-class dataset (40 train + 10 val per class) in the Tiny-ImageNet layout."""
    from augmine.data.synth import write_synthetic_dataset

    root = tmp_path_factory.mktemp("synth") / "data"
    write_synthetic_dataset(root, num_classes=10, train_per_class=40, val_per_class=10, seed=0)
    return root


@pytest.fixture(scope="session")
def real_root() -> Path:
    """The real Tiny-ImageNet sample from ../shared; the test is skipped when it is absent."""
    if not (REAL_SAMPLE / "wnids.txt").exists():
        pytest.skip(f"real Tiny-ImageNet sample not found at {REAL_SAMPLE}")
    return REAL_SAMPLE


@pytest.fixture(scope="session")
def synth_index(synth_root):
    from augmine.data.layouts import load_index

    return load_index(synth_root)


@pytest.fixture(scope="session")
def real_index(real_root):
    from augmine.data.layouts import load_index

    return load_index(real_root)


# --------------------------------------------------------------------------- shared runs
# Trained once per session; a test that changes one works on copy_run(run, tmp_path).

@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, synth_root):
    """support.TINY trained on ``synth_root``: one epoch at each of 16 (presized), 32 and
    64 px, a report per phase (a ``train.TrainResult``)."""
    from augmine.train.phases import train_run
    from support import TINY

    folder = tmp_path_factory.mktemp("trained")
    phases = [{**TINY["phases"][0], "presize": True}, *TINY["phases"][1:]]
    return train_run(write_config(folder, phases=phases), synth_root, folder / "run",
                     progress=False)


@pytest.fixture(scope="session")
def mining_run(tmp_path_factory, synth_root) -> Path:
    """A run of support.MINING (15 epochs at 16 px, where the planted pairs are confused),
    ready for a mining round: keep it unchanged, copy it to run rounds."""
    from augmine.train.phases import train_run

    folder = tmp_path_factory.mktemp("mining")
    train_run(write_config(folder, **MINING), synth_root, folder / "run", progress=False)
    return folder / "run"


@pytest.fixture(scope="session")
def round_run(tmp_path_factory, mining_run):
    """``mining_run`` after ``augmine mine round RUN``: round 1 (oversample x3 of the 2
    weakest classes, 2 epochs) and its control done; ``.run`` the folder, ``.output`` what
    the command printed."""
    from types import SimpleNamespace

    from click.testing import CliRunner

    from augmine.cli import cli

    run = copy_run(mining_run, tmp_path_factory.mktemp("round"))
    res = CliRunner().invoke(cli, ["mine", "round", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    return SimpleNamespace(run=run, output=res.output)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``augmine demo --epochs 2 --round-epochs 1`` on a generated 6-class set with one
    truncated train JPEG and one fake val JPEG: ``.refused`` is the run without
    ``--skip-bad`` (``.trained_when_refused``: whether it made checkpoints), ``.result``
    the one with it; ``.args`` that command, ``.bad`` the two files (relative to ``.data``)."""
    from types import SimpleNamespace

    from click.testing import CliRunner

    from augmine.cli import cli
    from augmine.data.synth import write_synthetic_dataset
    from support import spoil

    folder = tmp_path_factory.mktemp("demo")
    data, out = folder / "data", folder / "demo"
    write_synthetic_dataset(data, num_classes=6, train_per_class=120, val_per_class=30, seed=3)
    bad = spoil(data)
    args = ["demo", "--out", str(out), "--data", str(data), "--epochs", "2",
            "--round-epochs", "1"]
    refused = CliRunner().invoke(cli, args)
    trained_when_refused = (out / "checkpoints").exists()
    result = CliRunner().invoke(cli, args + ["--skip-bad"])
    return SimpleNamespace(data=data, out=out, args=args + ["--skip-bad"], bad=bad,
                           refused=refused, trained_when_refused=trained_when_refused,
                           result=result)
