"""Every patch augmine makes to code it does not own, and every use of another package's
private names, in one place.

Each entry of :data:`PATCHES` names the package, the versions the patch was written and
tested for, and what it does. The patch checks the installed version first
(:func:`require`): outside that range it stops with one line naming the package, its version
and the range, because a private name that moved or changed meaning would otherwise make the
patch fail obscurely or, worse, do something else silently. The tests' own patch (pytest's
private ``item._fixtureinfo``) lives in ``tests/support.py`` and uses :func:`check_version`.

Nothing heavy is imported here at import time: the feed's fork server imports this module.
"""

from __future__ import annotations

import functools
import platform
import threading
from dataclasses import dataclass

from augmine.core.errors import AugmineError


@dataclass(frozen=True)
class Patch:
    """``package`` (a distribution name, or ``python`` for the interpreter and its standard
    library), ``versions`` (a PEP 440 range, e.g. ``>=3.15,<3.16``) and ``what`` it does."""

    package: str
    versions: str
    what: str


PATCHES = {
    "keras-multi-worker": Patch(
        "keras", ">=3.15,<3.16",
        "Keras' TensorFlow trainer under MultiWorkerMirroredStrategy (keras-team/keras#20585)"),
    "spawn-without-main": Patch(
        "python", ">=3.10,<3.14",
        "multiprocessing.spawn.get_preparation_data (feed workers started without the main "
        "module)"),
    "forkserver-started": Patch(
        "python", ">=3.10,<3.14",
        "multiprocessing.forkserver's private _forkserver_pid"),
    "albumentations-without-torch": Patch(
        "albumentations", "==2.0.8",
        "albumentations' optional albumentations.pytorch import (refused in feed workers)"),
    "tf-data-service-private": Patch(
        "tensorflow", ">=2.16,<2.22",
        "tf.data service's private WorkerServer._address and DispatchServer._num_workers()"),
}


def installed_version(package: str) -> str:
    """The installed version of distribution ``package`` (``python``: the interpreter's)."""
    if package == "python":
        return platform.python_version()
    from importlib.metadata import version

    return version(package)


def check_version(package: str, version: str, versions: str, what: str) -> None:
    """One-line :class:`AugmineError` when ``version`` of ``package`` is outside
    ``versions`` (a PEP 440 range), naming the package, the version, the range and ``what``
    was written for it."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        inside = SpecifierSet(versions).contains(Version(version), prereleases=True)
    except InvalidVersion:
        inside = False
    if not inside:
        fix = f"use Python {versions}" if package == "python" else \
            f"pip install '{package}{versions}'"
        raise AugmineError(f"{package} {version} is outside {versions}, the versions augmine's "
                           f"patch of {what} was written for; {fix}, or update the patch in "
                           "augmine/core/compat.py")


def require(name: str, version: str | None = None) -> None:
    """Check patch ``name`` of :data:`PATCHES` against ``version`` (default: installed)."""
    patch = PATCHES[name]
    if version is None:
        _require_installed(name)
    else:
        check_version(patch.package, version, patch.versions, patch.what)


@functools.cache
def _require_installed(name: str) -> None:
    patch = PATCHES[name]
    check_version(patch.package, installed_version(patch.package), patch.versions, patch.what)


# --------------------------------------------------------------------------- keras-multi-worker

def fix_keras_multi_worker() -> None:
    """Two workarounds for Keras 3's TensorFlow trainer under MultiWorkerMirroredStrategy
    (keras-team/keras#20585), active only in multi-worker mode: ``fit`` no longer builds the
    model from a first batch averaged across workers (``_maybe_symbolic_build`` cannot
    reduce a batch tuple across workers; the model is built already, or builds when traced
    as without a strategy), and a step's scalar logs are averaged across replicas with
    ``axis=None`` (Keras asks for ``axis=0``, which scalars do not have). Idempotent."""
    require("keras-multi-worker")
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_augmine_fixed", False):
        return
    multi = trainer._collective_all_reduce_multi_worker
    build, reduce = trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and multi(self.distribute_strategy):
            return None
        return build(self, iterator=iterator, data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi(strategy):
            return trainer.tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    trainer._augmine_fixed = True


# --------------------------------------------------------------------------- spawn-without-main

_MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
_launching = threading.local()


def _preparation_data_without_main(name):
    """multiprocessing's ``spawn.get_preparation_data``, minus the main module while this
    thread starts processes through :func:`start_without_main` (others: unchanged)."""
    from multiprocessing import spawn

    data = spawn._augmine_original_get_preparation_data(name)
    if getattr(_launching, "hide_main", False):
        for key in _MAIN_KEYS:
            data.pop(key, None)
    return data


def start_without_main(procs) -> None:
    """Start ``procs`` so that the children never import the main script.

    multiprocessing's forkserver and spawn children re-run the parent's ``__main__`` (as
    ``__mp_main__``) before their target: a script importing Keras at its top paid that in
    every worker, and a script without a main guard failed. The preparation data that makes
    them do it comes from ``spawn.get_preparation_data``; it is wrapped once, and drops the
    main module only for starts made inside this function.
    """
    require("spawn-without-main")
    from multiprocessing import spawn

    if not hasattr(spawn, "_augmine_original_get_preparation_data"):
        spawn._augmine_original_get_preparation_data = spawn.get_preparation_data
        spawn.get_preparation_data = _preparation_data_without_main
    _launching.hide_main = True
    try:
        for p in procs:
            p.start()
    finally:
        _launching.hide_main = False


# --------------------------------------------------------------------------- forkserver-started

def forkserver_started() -> bool:
    """Whether this process's multiprocessing fork server is running (its preload list can
    be set only before it starts)."""
    require("forkserver-started")
    from multiprocessing import forkserver

    return getattr(forkserver._forkserver, "_forkserver_pid", None) is not None


# --------------------------------------------------------------------------- tf-data-service-private

def worker_address(worker) -> str:
    """``"host:port"`` of a started ``tf.data.experimental.service.WorkerServer``."""
    require("tf-data-service-private")
    return worker._address


def registered_workers(dispatcher) -> int:
    """How many workers a ``tf.data.experimental.service.DispatchServer`` has seen."""
    require("tf-data-service-private")
    return int(dispatcher._num_workers())


# --------------------------------------------------------------------------- albumentations-without-torch

TORCH_PART = "albumentations.pytorch"


class _RefuseAlbumentationsPytorch:
    """A ``sys.meta_path`` finder that refuses ``albumentations.pytorch`` and its submodules."""

    def find_spec(self, name, path=None, target=None):
        if name == TORCH_PART or name.startswith(TORCH_PART + "."):
            raise ModuleNotFoundError(f"{name} is not loaded in augmine pipeline workers",
                                      name=name)
        return None


def keep_torch_out_of_albumentations() -> None:
    """Make ``albumentations.pytorch`` fail to import in this process (idempotent).

    albumentations 2.0.8 runs ``from .pytorch import *`` (under ``suppress(ImportError)``) in
    its ``__init__``, which imports ``torch`` whenever it is installed: about 12 s per fresh
    process on a GPU machine, for a ``ToTensorV2`` the feed never uses. Installed by the fork
    server before it imports albumentations (:mod:`augmine.feed.worker_boot`); the version is
    checked in the main process before workers start (``require``), since an error in the
    fork server's preload would stop it without a word."""
    import sys

    if not any(type(f).__name__ == _RefuseAlbumentationsPytorch.__name__ for f in sys.meta_path):
        sys.meta_path.insert(0, _RefuseAlbumentationsPytorch())


def allow_torch() -> None:
    """Undo :func:`keep_torch_out_of_albumentations` (idempotent): a worker calls it once
    albumentations is loaded, so a recipe that does hold a ``ToTensorV2`` still unpickles."""
    import sys

    sys.meta_path[:] = [f for f in sys.meta_path
                        if type(f).__name__ != _RefuseAlbumentationsPytorch.__name__]
