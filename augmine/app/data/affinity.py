"""A saved affinity result as the Affinity page shows it: the command that measures one and
one cell (class, transform) with the images it hurts most."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir


def affinity_command(run_dir) -> str:
    """The command that measures affinity on ``run_dir``, naming the recipe of the run's
    last phase when its config can be read (else ``RECIPE``)."""
    run = RunDir.of(run_dir)
    recipe = "RECIPE"
    try:
        last = run.config.phases[-1].recipe
        recipe = Path(last).stem if last else recipe
    except (AugmineError, AttributeError, IndexError):
        pass
    return f"augmine recipe affinity {recipe} --run {run.path}"


def affinity_cell(result: dict, c: int, k: int) -> dict:
    """Cell (class ``c``, column ``k``) of a saved affinity result: ``drop``, ``low``,
    ``high``, ``clean`` (class accuracy on clean images), ``support`` and ``order``: the
    class's val image indices (into ``result["val_paths"]``), the ones the column hurts
    most first (per-image clean minus augmented score, averaged over draws)."""
    from augmine.train.affinity import as_array

    labels = np.asarray(result["labels"])
    correct = np.asarray(result["correct"], dtype=np.float64)
    idx = np.flatnonzero(labels == c)
    hurt = correct[0, idx] - correct[k + 1, idx]
    order = idx[np.argsort(-hurt, kind="stable")]
    cell = {key: float(as_array(result[key])[c, k]) for key in ("drop", "low", "high")}
    return {**cell, "clean": float(as_array(result["clean"])[c]), "support": int(len(idx)),
            "order": order}
