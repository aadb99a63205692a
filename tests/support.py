"""Shared by the tests (imported as ``support``; fixtures live in conftest.py): the one tiny
training config, the TensorFlow blocker, run-folder and CLI helpers, read-only folders."""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# The one tiny training config: a shallow DenseNet (3 blocks of 1 layer: quick to compile on
# every backend), one epoch at each of 16, 32 and 64 px, no augmentation, in-process feed
# (workers: 0), seeded. Tests change what they need through tiny_config(**changes)
# (top-level keys replaced whole).
TINY = {"name": "tiny", "model": {"width": 16, "growth_rate": 12, "blocks": 3,
                                  "layers_per_block": 1}, "batch_size": 32,
        "schedule": {"min_lr": 0.01, "max_lr": 0.1, "half_cycle": 20}, "seed": 0,
        "workers": 0, "mixed_precision": "false", "strategy": "default",
        "phases": [{"size": 16, "epochs": 1, "recipe": "none"},
                   {"size": 32, "epochs": 1, "recipe": "none"},
                   {"size": 64, "epochs": 1, "recipe": "none"}],
        "mining": {"policy": "bottom-k", "k": 2, "factor": 3, "epochs": 2}}

# The mining run's changes: at 16 px the generated set's planted pairs' textures vanish, so
# the pair is what the model trained 15 epochs there (with Adam) confuses; its rounds run at
# 16 px too.
MINING = {"name": "mining", "optimizer": {"name": "adam"},
          "schedule": {"min_lr": 0.002, "max_lr": 0.01, "half_cycle": 60},
          "phases": [{"size": 16, "epochs": 15, "recipe": "none"}]}

ONE_PHASE = [{"size": 16, "epochs": 1, "recipe": "none"}]

# `augmine demo --config` in the tests: TINY with the built-in cpu-small config's recipes
# (light at 16 and 32 px, tiny-imagenet-14 at 64 px) and a 1-epoch round of the 2 weakest.
DEMO = {**TINY, "name": "demo-tiny",
        "phases": [{"size": 16, "epochs": 1, "recipe": "light.yaml"},
                   {"size": 32, "epochs": 1, "recipe": "light.yaml"},
                   {"size": 64, "epochs": 1, "recipe": "tiny-imagenet-14.yaml"}],
        "mining": {"policy": "bottom-k", "k": 2, "factor": 3, "epochs": 1}}


def tiny_config(**changes) -> dict:
    """A deep copy of TINY with ``changes`` replacing its top-level keys."""
    return copy.deepcopy({**TINY, **changes})


def write_config(folder: Path, name: str = "train.yaml", **changes) -> Path:
    """``tiny_config(**changes)`` written as ``folder/name``; returns its path."""
    path = Path(folder) / name
    path.write_text(yaml.safe_dump(tiny_config(**changes), sort_keys=False))
    return path


def copy_run(run: Path, tmp_path: Path, name: str = "run") -> Path:
    """A private copy of a shared run folder (checkpoints are small: a copy costs ms)."""
    dst = Path(tmp_path) / name
    shutil.copytree(run, dst)
    return dst


# ``import tensorflow`` made to fail (looking for it is allowed: torch._dynamo lists where
# installed packages live). Installed as a sitecustomize, it blocks every process that has
# its folder on PYTHONPATH.
BLOCKER = """
import importlib.abc, importlib.machinery, sys


class _Refuse(importlib.abc.Loader):
    def create_module(self, spec):
        raise ImportError(f"import of {spec.name} blocked (augmine tests)")

    def exec_module(self, module):
        raise ImportError(f"import of {module.__name__} blocked (augmine tests)")


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return importlib.machinery.ModuleSpec(name, _Refuse())
        return None


sys.meta_path.insert(0, _NoTensorFlow())
"""

_blocker_site: Path | None = None


def blocker_site() -> Path:
    """A folder holding the blocker as ``sitecustomize.py`` (made once per test session)."""
    global _blocker_site
    if _blocker_site is None:
        _blocker_site = Path(tempfile.mkdtemp(prefix="augmine-no-tf-"))
        (_blocker_site / "sitecustomize.py").write_text(BLOCKER)
    return _blocker_site


def subprocess_env(*, block_tensorflow: bool = False, **changes: str) -> dict:
    """This process's environment for a Python subprocess: the checkout first on PYTHONPATH
    (it imports this worktree's augmine), the blocker before it when ``block_tensorflow``."""
    env = {**os.environ, **changes}
    paths = [str(blocker_site())] if block_tensorflow else []
    paths += [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def augmine_command() -> list[str]:
    """The ``augmine`` console script installed beside this interpreter, as a command line for
    a fresh process (run it with :func:`subprocess_env`)."""
    import sys

    script = Path(sys.executable).parent / "augmine"
    return [str(script)] if script.is_file() else \
        [sys.executable, "-c", "from augmine.cli import main; main()"]


# pytest has no public way to ask a fixture's scope at collection time; the one private name
# the tests read, guarded as augmine/core/compat.py guards augmine's patches.
PYTEST_PRIVATE = ">=8,<9.2"


def fixture_definitions(item, version: str | None = None) -> dict:
    """``{fixture name: [FixtureDef, ...]}`` of a collected test ``item`` (pytest's private
    ``item._fixtureinfo``); a one-line error when pytest (``version``, default the installed
    one) is outside :data:`PYTEST_PRIVATE`, the versions this was written for."""
    import pytest

    from augmine.core.compat import check_version

    check_version("pytest", version or pytest.__version__, PYTEST_PRIVATE,
                  "pytest's private item._fixtureinfo")
    return getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})


def spoil(root: Path) -> tuple[str, str]:
    """Truncate one train JPEG and turn one val JPEG into HTML; their paths under ``root``."""
    root = Path(root)
    train = sorted((root / "train").glob("*/images/*.JPEG"))[3]
    train.write_bytes(train.read_bytes()[:100])
    val = sorted((root / "val" / "images").glob("*.JPEG"))[1]
    val.write_bytes(b"<html>not an image</html>")
    return str(train.relative_to(root)), str(val.relative_to(root))


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` read-only for the block: a read-only bind mount as root (root ignores
    permission bits), else ``chmod -R a-w``. Skips the test where neither works. Yields
    the reason the OS gives ("read-only file system" or "permission denied")."""
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(folder)], check=True)
        try:
            yield "permission denied"
        finally:
            subprocess.run(["chmod", "-R", "u+w", str(folder)], check=True)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)],
                             capture_output=True).returncode == 0
    if mounted and subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)],
                                  capture_output=True).returncode != 0:
        subprocess.run(["umount", str(folder)], check=True)
        mounted = False
    if not mounted:
        pytest.skip("cannot make a read-only folder here (root without mount rights)")
    try:
        yield "read-only file system"
    finally:
        subprocess.run(["umount", str(folder)], check=True)
