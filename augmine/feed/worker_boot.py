"""First module the pipeline's fork server imports: keeps PyTorch out of the workers.

albumentations 2.0.8 runs ``from .pytorch import *`` (under ``suppress(ImportError)``) in
its ``__init__``, which imports ``torch`` whenever it is installed: about 12 s per fresh
process on a GPU machine, for a ``ToTensorV2`` transform the pipeline never uses (it
returns uint8 HWC arrays). Importing this module installs an import hook that makes
``albumentations.pytorch`` fail to import, so albumentations skips it; the fork server
imports this module before albumentations, and every worker it forks inherits the hook.
Nothing else imports this module: the main process keeps albumentations' normal behaviour.
:func:`allow_torch` removes the hook (a worker calls it before it unpickles the recipe,
so a recipe that does hold a ``ToTensorV2`` still loads, paying the import only then).
"""

from __future__ import annotations

import sys

BLOCKED = "albumentations.pytorch"


class _BlockAlbumentationsPytorch:
    """A ``sys.meta_path`` finder that refuses ``albumentations.pytorch`` and its submodules."""

    def find_spec(self, name, path=None, target=None):
        if name == BLOCKED or name.startswith(BLOCKED + "."):
            raise ModuleNotFoundError(f"{name} is not loaded in augmine pipeline workers",
                                      name=name)
        return None


def allow_torch() -> None:
    """Remove the hook from ``sys.meta_path`` (idempotent)."""
    sys.meta_path[:] = [f for f in sys.meta_path
                        if type(f).__name__ != _BlockAlbumentationsPytorch.__name__]


if not any(type(f).__name__ == _BlockAlbumentationsPytorch.__name__ for f in sys.meta_path):
    sys.meta_path.insert(0, _BlockAlbumentationsPytorch())
