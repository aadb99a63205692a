"""A run's Keras checkpoints: saving and loading them, and choosing which one is scored.

:class:`~augmine.runs.rundir.RunDir` knows where they are (``RunDir.checkpoint``) and copies
them (best, snapshots, branches); this module writes and reads the ``.keras`` files
(:func:`save_checkpoint`, :func:`load_checkpoint`, which registers augmine's Keras objects
first so they load on every backend) and holds the rules for which checkpoint and size a run
is evaluated at (:func:`evaluation_settings`, :func:`resolve_checkpoint`,
:func:`best_summary`). Keras is imported only inside the functions that load.
"""

from __future__ import annotations

import os
from pathlib import Path

from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir

DEFAULT_SIZE = 64          # a bare .keras file with no run folder around it
DEFAULT_BATCH_SIZE = 256


# --------------------------------------------------------------------------- saving, loading

def save_checkpoint(run: RunDir, model) -> Path:
    """Save ``model`` (with its optimizer) as the run's ``last.keras``, atomically; not
    flushed on its own: the ``state.json`` written after it is the flushed commit point
    (docs/reliability.md, "durability")."""
    path = run.checkpoint("last")
    with atomic.atomic_path(path, sync=False) as tmp:
        model.save(tmp)
    return path


def register_custom_objects() -> None:
    """Register augmine's Keras objects that checkpoints can hold (the schedules of
    :mod:`augmine.model.schedules`, the soft-target loss and metric of
    :mod:`augmine.model.losses`), so ``keras.saving.load_model`` finds them."""
    from augmine.model import losses  # noqa: F401  (registers at import)
    from augmine.model.schedules import keras_schedules

    keras_schedules()


def load_checkpoint(path: str | os.PathLike, compile: bool = True):
    """Load a ``.keras`` checkpoint written by the trainer (with its optimizer state unless
    ``compile=False``); one-line errors when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise AugmineError(f"{path}: checkpoint not found; train first or check the run folder")
    from augmine.core.runtime import import_keras

    keras = import_keras()
    register_custom_objects()
    try:
        return keras.saving.load_model(path, compile=compile)
    except (ValueError, OSError) as exc:
        damage = _damage(path)
        if damage:
            others = [p for p in sorted(path.parent.glob("*.keras")) if p != path and
                      _damage(p) is None]
            fix = (f"use another checkpoint of the run ({', '.join(p.name for p in others)} in "
                   f"{path.parent}) or restore the file from a copy" if others else
                   "restore the file from a copy")
            raise AugmineError(f"{path}: the checkpoint is damaged or truncated ({damage}; "
                               f"{path.stat().st_size} bytes); {fix}") from None
        raise AugmineError(f"{path}: cannot load this checkpoint ({str(exc).splitlines()[0]})")


def _damage(path: Path) -> str | None:
    """What is broken in a ``.keras`` file (a zip archive), or None when it reads whole."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"not a whole .keras archive: {exc}"
    return f"its member {bad} fails its checksum" if bad else None


# --------------------------------------------------------------------------- choosing

def evaluation_settings(cfg=None, size: int | None = None,
                        batch_size: int | None = None) -> tuple[int, int]:
    """``(size, batch size)`` for evaluating a run whose config is ``cfg`` (a TrainConfig,
    or None for a bare checkpoint). Given values win; else the last phase's size and the
    config's ``eval_batch_size`` (else ``batch_size``); with no config 64 px and 256."""
    if size is None:
        size = cfg.phases[-1].size if cfg is not None else DEFAULT_SIZE
    if batch_size is None:
        batch_size = (cfg.eval_batch_size or cfg.batch_size) if cfg is not None else \
            DEFAULT_BATCH_SIZE
    if int(size) < 1 or int(batch_size) < 1:
        raise AugmineError(f"size {size} and batch size {batch_size} must both be >= 1")
    return int(size), int(batch_size)


def resolve_checkpoint(run_or_checkpoint, which: str = "best", size: int | None = None):
    """``(checkpoint path, RunDir or None, size)`` to evaluate.

    A run folder: ``which="best"`` picks the best checkpoint at the evaluation size (the
    last phase's unless ``size`` is given) when the run kept one, else ``best.keras``, else
    ``last.keras``; ``which="last"`` picks ``last.keras``. A ``.keras`` file is used as is
    (with its run folder's config when it sits in one). ``size`` is the evaluation size.
    """
    path = Path(run_or_checkpoint).expanduser()
    if path.is_dir():
        run = RunDir(path)
        cfg = run.config if run.config_path.is_file() else None
        size, _ = evaluation_settings(cfg, size)
        if which == "best":
            options = [run.checkpoint("best", size), run.checkpoint("best"),
                       run.checkpoint("last")]
        else:
            options = [run.checkpoint(which)]
        found = [p for p in options if p.is_file()]
        if not found:
            raise AugmineError(f"{path}: no {options[0].name}; is this a run folder that "
                               "finished at least one epoch?")
        return found[0], run, size
    if not path.is_file():
        raise AugmineError(f"{path}: neither a run folder nor a .keras checkpoint")
    run = RunDir(path.parent.parent)
    if run.checkpoint("last").parent != path.parent or not run.config_path.is_file():
        run = None
    size, _ = evaluation_settings(run.config if run else None, size)
    return path, run, size


def best_summary(run_dir) -> dict | None:
    """What "best" means for a run, once: the checkpoint ``augmine evaluate RUN`` scores (the
    best epoch at the evaluation size, the last phase's) with its epoch and val top-1, and
    the best epoch at any size when that one differs. ``{"checkpoint", "epoch", "size",
    "val_accuracy", "overall": {"epoch", "size", "val_accuracy", "checkpoint"} or None}``;
    None before the first epoch."""
    run = RunDir.of(run_dir)
    state = run.read_state()
    size, _ = evaluation_settings(run.config)
    here = state.best_by_size.get(str(size))
    if here is None:
        return None
    sizes = {int(r["epoch"]): int(r["size"]) for r in run.read_history() if r.get("epoch")}
    overall = None
    if state.best_epoch is not None and state.best_epoch != here.epoch:
        overall = {"epoch": state.best_epoch, "size": sizes.get(state.best_epoch),
                   "val_accuracy": state.best_val_accuracy,
                   "checkpoint": str(run.checkpoint("best"))}
    return {"checkpoint": str(run.checkpoint("best", size)), "epoch": here.epoch,
            "size": size, "val_accuracy": here.val_accuracy, "overall": overall}


def format_best(best: dict, run) -> list[str]:
    """Lines for ``augmine train``'s summary: the checkpoint ``evaluate`` scores, and the
    best epoch at another size when there is one."""
    lines = [f"best val  {best['val_accuracy']:.2%} at epoch {best['epoch']} ({best['size']} "
             f"px): {best['checkpoint']}, what `augmine evaluate {run}` scores"]
    o = best["overall"]
    if o is not None:
        lines.append(f"          (epoch {o['epoch']} at {o['size']} px had {o['val_accuracy']:.2%} "
                     f"at its own size; it is in {o['checkpoint']}, and scored at "
                     f"{best['size']} px it differs)")
    return lines
