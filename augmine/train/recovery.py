"""Rebuilding a run's lost or damaged ``state.json`` from the files the epochs left behind
(``augmine train --run-dir RUN --rebuild-state``), so that ``--resume`` continues the run
from ``last.keras`` instead of anyone starting it afresh over its work.

Every epoch writes ``last.keras``, then the best checkpoints, then its ``history.csv`` row,
then ``state.json`` (see :mod:`augmine.train.fit`), so the history's rows are the epochs
that ``last.keras`` holds (at most one more, which the resume trains again). The rebuilt
state counts them per phase, takes the schedule step from the dataset's steps per epoch and
the best accuracies from the rows; a run with mining rounds is not rebuilt (its round
snapshots hold the state to go back to).
"""

from __future__ import annotations

from augmine.analysis.plans import apply_holdout
from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir
from augmine.runs.starts import new_state
from augmine.runs.state import BestAtSize, RunState
from augmine.train.phases import phase_steps, run_index


def rebuild_state(run_dir, skip_bad: bool = False, progress: bool = False) -> RunState:
    """Write a new ``state.json`` for the run in ``run_dir`` from its ``config.yaml``,
    ``history.csv``, ``checkpoints/last.keras``, reports and recorded dataset; a damaged
    ``state.json`` is kept as ``state-damaged.json``. ``skip_bad``: as in
    :func:`~augmine.train.phases.train_run`. Returns the state; a one-line
    :class:`AugmineError` when the files do not make a whole state (nothing is written
    then)."""
    run = RunDir.of(run_dir)
    if run.has_state():
        try:
            run.read_state()
        except AugmineError:
            pass
        else:
            raise AugmineError(f"{run.state_path} is whole, nothing to rebuild; continue the "
                               f"run with `augmine train --run-dir {run} --resume`")
    refuse = f"so state.json cannot be rebuilt; {run.state_fix(rebuild=False)}"
    if not run.has_checkpoint("last") or not run.history_path.is_file():
        raise AugmineError(f"{run}: no checkpoints/last.keras with its history.csv, {refuse}")
    if not run.config_path.is_file():
        raise AugmineError(f"{run}: no config.yaml (the run's config), {refuse}")
    cfg = run.config
    rows = run.read_history()
    stages = sorted({r.get("stage", "") for r in rows if not str(r.get("stage")).startswith(
        "phase-")})
    if stages:
        raise AugmineError(f"{run}: history.csv holds mining rounds ({', '.join(stages)}), "
                           f"{refuse}")
    phases = _phase_counts(run, rows, [p.epochs for p in cfg.phases], refuse)
    index, skips = run_index(run.recorded_data(), None, skip_bad, progress)
    state = new_state(cfg, index)
    per_epoch = phase_steps(cfg, apply_holdout(index, cfg.mining.holdout, cfg.seed))
    phase = max(phases) if phases else 1
    state = state.model_copy(update=dict(
        skips, phase=phase, stage=f"phase-{phase}", epochs_done=len(rows),
        phase_epochs_done=phases.get(phase, 0), stage_epochs_done=phases.get(phase, 0),
        step=sum(per_epoch[p - 1][0] * n for p, n in phases.items()),
        reports=[f"phase-{p}" for p in range(1, phase + 1)
                 if phases.get(p) == cfg.phases[p - 1].epochs
                 and run.report_file(f"phase-{p}", "report.json").is_file()]))
    _best_from_history(state, rows)
    if state.epochs_done == cfg.total_epochs and len(state.reports) == len(cfg.phases):
        state.status = "done"
    run.set_aside_state()
    run.write_state(state)
    return state


def _phase_counts(run: RunDir, rows: list[dict], planned: list[int], refuse: str) -> dict:
    """``{phase: epochs done}`` from the history's rows, checked to be the run's epochs
    1..N in order, each phase full before the next starts."""
    counts: dict[int, int] = {}
    for n, row in enumerate(rows, 1):
        try:
            epoch, phase = int(row["epoch"]), int(row["phase"])
        except (KeyError, TypeError, ValueError):
            raise AugmineError(f"{run.history_path}: row {n} has no whole epoch and phase "
                               f"numbers, {refuse}") from None
        later = [p for p in counts if p > phase]
        if epoch != n or not 1 <= phase <= len(planned) or later or \
                any(counts.get(p, 0) != planned[p - 1] for p in range(1, phase)):
            raise AugmineError(f"{run.history_path}: row {n} (epoch {epoch}, phase {phase}) "
                               f"does not follow the run's phases in order, {refuse}")
        counts[phase] = counts.get(phase, 0) + 1
        if counts[phase] > planned[phase - 1]:
            raise AugmineError(f"{run.history_path}: phase {phase} has more rows than its "
                               f"{planned[phase - 1]} epochs, {refuse}")
    return counts


def _best_from_history(state: RunState, rows: list[dict]) -> None:
    """The best val accuracy of the run and per image size, from the history's rows (what
    the best checkpoints were promoted at)."""
    for row in rows:
        try:
            acc = float(row["val_accuracy"])
        except (KeyError, TypeError, ValueError):
            continue
        epoch = int(row["epoch"])
        if state.best_val_accuracy is None or acc > state.best_val_accuracy:
            state.best_val_accuracy, state.best_epoch = acc, epoch
        here = state.best_by_size.get(str(row["size"]))
        if here is None or acc > here.val_accuracy:
            state.best_by_size[str(row["size"])] = BestAtSize(val_accuracy=acc, epoch=epoch,
                                                              stage=row["stage"])
