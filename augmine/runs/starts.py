"""What a run folder allows before anything is written: a new run (never over a run's work),
a resume (never advising a command that destroys work), the dataset of a resume, and where a
damaged ``state.json`` comes back from; the first ``state.json`` of a run (:func:`new_state`)
and of a resume with more last-phase epochs (:func:`extended_state`), both a
:class:`~augmine.runs.state.RunState`. A part of
:class:`augmine.runs.rundir.RunDir`, which owns the layout."""

from __future__ import annotations

import os
from pathlib import Path

from augmine.core.errors import AugmineError
from augmine.runs.state import RunState


class RunStarts:
    """Start and resume checks of a :class:`~augmine.runs.rundir.RunDir` (mixed into it: uses
    its ``path``, ``checkpoints_dir``, ``reports_dir``, ``history_path``, ``state_path``,
    ``has_state``, ``has_checkpoint``, ``read_state`` and ``recorded_data``)."""

    def state_fix(self, rebuild: bool = True) -> str:
        """How to get a damaged or missing ``state.json`` back, for this run: from the
        latest round's start snapshot, else (``rebuild``) rebuilt from the history and
        ``last.keras``, else a new run folder (nothing here to resume from)."""
        snapshots = sorted((p for p in self.checkpoints_dir.glob("round-*-start")
                            if (p / self.state_path.name).is_file()),
                           key=lambda p: int(p.name.split("-")[1]))
        if snapshots:
            return (f"restore it from the latest round's start snapshot: copy "
                    f"{snapshots[-1] / self.state_path.name} over it")
        if rebuild and self.has_checkpoint("last") and self.history_path.is_file():
            return (f"rebuild it from history.csv and checkpoints/last.keras with `augmine "
                    f"train --run-dir {self.path} --rebuild-state`, then continue with "
                    f"`augmine train --run-dir {self.path} --resume`")
        return "choose a new --run-dir (the files here stay as they are)"

    def work_files(self) -> list[Path]:
        """The files that hold this run's work (checkpoints, reports, history, plans,
        branches), in that order: what starting a new run here would overwrite."""
        found = []
        for folder in (self.checkpoints_dir, self.reports_dir, self.history_path,
                       self.plan_path(1).parent, self.branch_dir("group", "name").parent.parent):
            if folder.is_file():
                found.append(folder)
            elif folder.is_dir():
                found += sorted(p for p in folder.rglob("*") if p.is_file())
        return found

    def check_new_run(self) -> None:
        """One-line error unless a new run may start here: nothing trained yet (a
        ``state.json`` without a finished epoch, checkpoint, report or history is a start
        that failed before its first epoch, and is started afresh)."""
        work = self.work_files()
        if self.has_state():
            state = self.read_state()
            if work or state.epochs_done:
                planned = "?" if state.planned_epochs is None else state.planned_epochs
                raise AugmineError(
                    f"{self.path}: already holds a run (state.json: {state.epochs_done}"
                    f" of {planned} epochs done); add --resume to "
                    f"continue it (`augmine train --run-dir {self.path} --resume`) or choose a "
                    "new --run-dir")
        elif work:
            self._refuse_without_state(work, "a new run here would overwrite them")

    def check_resumable(self) -> None:
        """One-line error unless ``state.json`` is there to resume from; the fix never
        overwrites what the folder holds."""
        if self.has_state():
            return
        work = self.work_files()
        if work:
            self._refuse_without_state(work, "there is nothing to resume from")
        raise AugmineError(f"{self.path}: nothing to resume (no state.json, no checkpoints, "
                           "reports or history); start a run there with `augmine train CONFIG "
                           f"--run-dir {self.path}`")

    def _refuse_without_state(self, work: list[Path], why: str) -> None:
        shown = ", ".join(str(p.relative_to(self.path)) for p in work[:3])
        more = f" and {len(work) - 3} more files" if len(work) > 3 else ""
        raise AugmineError(f"{self.path}: holds {shown}{more} but no state.json, so {why}; "
                           f"{self.state_fix()}")

    def set_aside_state(self) -> Path | None:
        """Rename a damaged ``state.json`` to ``state-damaged.json`` (kept, never deleted);
        its new path, or None when there is none."""
        if not self.has_state():
            return None
        aside = self.state_path.with_name("state-damaged.json")
        os.replace(self.state_path, aside)
        return aside

    def resume_data(self, data) -> tuple[str, list[str]]:
        """The dataset a resumed run trains on: the recorded one, or ``data`` (``--data``)
        only where the recorded folder is gone (a moved dataset; its classes are checked
        after). Returns ``(folder, printed lines)``; another existing folder is a one-line
        error."""
        recorded = self.recorded_data()
        if data is None or Path(data).expanduser().resolve() == Path(recorded).resolve():
            return recorded, []
        data = str(Path(data).expanduser().resolve())
        if Path(recorded).exists():
            raise AugmineError(f"--data {data}: the run {self.path} trained on {recorded}; a "
                               f"resume continues the same run: resume without --data "
                               f"(`augmine train --run-dir {self.path} --resume`), or train "
                               "on the other dataset into a new --run-dir")
        return data, [f"data: {recorded} -> {data} (the recorded folder is gone; the run's "
                      "classes are checked); config.yaml records it"]


def new_state(cfg, index) -> RunState:
    """The state of a run of ``cfg`` (a TrainConfig) on ``index`` (a DatasetIndex) before
    its first epoch."""
    return RunState(status="running", stage="phase-1", phase=1, phase_epochs_done=0,
                    stage_epochs_done=0, epochs_done=0, step=0,
                    planned_epochs=cfg.total_epochs, num_classes=index.num_classes,
                    class_ids=list(index.class_ids), class_names=list(index.class_names))


def extended_state(state: RunState, cfg) -> None:
    """``state`` of a run resumed with more (or fewer) last-phase epochs: planned anew, and
    the last phase's report written again at its new end."""
    last = f"phase-{len(cfg.phases)}"
    state.status, state.planned_epochs = "running", cfg.total_epochs
    state.reports = [r for r in state.reports if r != last]
