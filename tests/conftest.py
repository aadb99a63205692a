"""Shared fixtures: a small generated dataset and the real Tiny-ImageNet sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real sample lives in ../shared beside the checkout; AUGMINE_SAMPLE overrides.
REAL_SAMPLE = Path(os.environ.get(
    "AUGMINE_SAMPLE", REPO.parent / "shared" / "data" / "tiny-imagenet-sample"))

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# ``AUGMINE_BLOCK_TENSORFLOW=1`` (the JAX job in .ci/run) makes ``import tensorflow`` fail in
# this process and in every subprocess a test starts (through a sitecustomize on PYTHONPATH),
# proving that the JAX backend never needs TensorFlow.
BLOCK_TF = os.environ.get("AUGMINE_BLOCK_TENSORFLOW") == "1"
_BLOCKER = """
import importlib.abc, importlib.machinery, sys


class _Refuse(importlib.abc.Loader):
    def create_module(self, spec):
        raise ImportError(f"import of {spec.name} blocked (AUGMINE_BLOCK_TENSORFLOW=1)")

    def exec_module(self, module):
        raise ImportError(f"import of {module.__name__} blocked (AUGMINE_BLOCK_TENSORFLOW=1)")


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    # Looking for TensorFlow is allowed (torch._dynamo lists where installed packages live);
    # importing it fails.
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return importlib.machinery.ModuleSpec(name, _Refuse())
        return None


sys.meta_path.insert(0, _NoTensorFlow())
"""
if BLOCK_TF:
    import sys
    import tempfile

    _site = Path(tempfile.mkdtemp(prefix="augmine-no-tf-"))
    (_site / "sitecustomize.py").write_text(_BLOCKER)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(_site)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    exec(compile(_BLOCKER, "augmine-no-tf", "exec"))  # this process too
    assert "tensorflow" not in sys.modules, "tensorflow was imported before conftest"


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``tensorflow`` when the Keras backend is not TensorFlow."""
    from augmine.runtime import keras_backend

    if keras_backend() == "tensorflow" and not BLOCK_TF:
        return
    skip = pytest.mark.skip(reason=f"needs the TensorFlow backend (backend: {keras_backend()})")
    for item in items:
        if "tensorflow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A generated 10-class dataset (40 train + 10 val per class) in the Tiny-ImageNet layout."""
    from augmine.synth import write_synthetic_dataset

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
    from augmine.dataset import load_index

    return load_index(synth_root)


@pytest.fixture(scope="session")
def real_index(real_root):
    from augmine.dataset import load_index

    return load_index(real_root)
