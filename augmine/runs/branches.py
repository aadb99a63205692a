"""The run folder's copies for rounds: ``checkpoints/round-N-start/`` (the run as round N
first found it) and ``branches/<group>/<name>/`` (run folders trained beside the run from
one start: a round's control, ``mine compare``'s modes). A part of
:class:`augmine.runs.rundir.RunDir`, which owns the layout; kept apart because it is one
job: copying a run's commit files (last/best checkpoints, state) atomically.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TypeVar

from augmine.core import atomic
from augmine.core.errors import AugmineError

_Run = TypeVar("_Run", bound="RoundCopies")    # the class this is mixed into (RunDir)


class RoundCopies:
    """Round snapshots and branches of a :class:`~augmine.runs.rundir.RunDir` (mixed into it:
    uses its ``path``, ``checkpoints_dir``, ``checkpoint``, ``state_path``, ``config_path``,
    ``history_path`` and ``has_state``)."""

    def snapshot_dir(self, round_no: int) -> Path:
        """``checkpoints/round-N-start/``: the run as it was when round N first started."""
        return self.checkpoints_dir / f"round-{int(round_no)}-start"

    def snapshot_checkpoint(self, round_no: int) -> Path:
        """The ``last.keras`` round N started from (its snapshot's copy)."""
        return self.snapshot_dir(round_no) / "last.keras"

    def branch_dir(self, group: str, name: str) -> Path:
        """``branches/<group>/<name>/``: a run folder trained beside this one."""
        return self.path / "branches" / group / name

    def branch(self: _Run, group: str, name: str, round_no: int | None = None) -> _Run:
        """A run folder ``branches/<group>/<name>/`` that starts where this run is now
        (``round_no`` None) or where round N started (its snapshot): config, history,
        last/best checkpoints and state are copied once (state last: the commit point);
        later calls return it as it is, so a branch resumes like a run."""
        dst = type(self)(self.branch_dir(group, name))
        if dst.has_state():
            return dst
        if round_no is None:
            files = ((self.checkpoint("last"), dst.checkpoint("last")),
                     (self.checkpoint("best"), dst.checkpoint("best")),
                     (self.state_path, dst.state_path))
        else:
            files = [(src, dst_) for (_, src), dst_ in zip(
                self._snapshot_files(round_no),
                (dst.checkpoint("last"), dst.checkpoint("best"), dst.state_path))]
        for src, target in ((self.config_path, dst.config_path),
                            (self.history_path, dst.history_path), *files):
            if src.is_file():
                atomic.copy_file(src, target)
        if not dst.has_state():
            raise AugmineError(f"{self.path}: no state.json to start {dst.path} from; train "
                               "the run first")
        return dst

    def remove_branches(self, group: str) -> None:
        """Delete ``branches/<group>/`` (a round about to be trained again)."""
        shutil.rmtree(self.path / "branches" / group, ignore_errors=True)

    def _snapshot_files(self, round_no: int):
        snap = self.snapshot_dir(round_no)
        return ((self.checkpoint("last"), self.snapshot_checkpoint(round_no)),
                (self.checkpoint("best"), snap / "best.keras"),
                (self.state_path, snap / self.state_path.name))

    def _sized_best(self, folder: Path) -> list[Path]:
        return sorted(folder.glob("best-*px.keras"))

    def snapshot(self, round_no: int, meta: dict) -> None:
        """Copy last.keras, best.keras, every best-<S>px.keras and state.json to
        ``round-N-start/``; ``round.json`` (``meta``, written last) marks the snapshot
        complete."""
        snap = self.snapshot_dir(round_no)
        for src in self._sized_best(self.checkpoints_dir):
            atomic.copy_file(src, snap / src.name)
        for src, dst in self._snapshot_files(round_no):
            if src.is_file():
                atomic.copy_file(src, dst)
        atomic.write_json(snap / "round.json", meta)

    def snapshot_meta(self, round_no: int) -> dict | None:
        """The ``meta`` of round N's complete start snapshot, or None when there is none."""
        return atomic.read_json(self.snapshot_dir(round_no) / "round.json",
                                "restart the round from its start with "
                                f"`augmine mine round {self.path} --redo`")

    def restore(self, round_no: int) -> None:
        """Put checkpoints and state back as they were when round N started (later history
        rows are dropped by the trainer on its next load)."""
        for src in self._sized_best(self.snapshot_dir(round_no)):
            atomic.copy_file(src, self.checkpoints_dir / src.name)
        for dst, src in self._snapshot_files(round_no):
            if src.is_file():
                atomic.copy_file(src, dst)
        self._config = None

    def keep_best(self, round_no: int) -> list[Path]:
        """Put the best checkpoints (``best.keras``, ``best-<S>px.keras``) and the state's
        ``best_*`` entries back as they were when round N started, leaving ``last.keras``
        and the rest of the state as the round left them: rounds never choose "best" (by
        val images that measure them). Snapshots from before best-<S>px files were kept
        hold ``best.keras`` only. Returns the checkpoints put back."""
        snap = self.snapshot_dir(round_no)
        kept = self._sized_best(snap) + [p for p in [snap / "best.keras"] if p.is_file()]
        for src in kept:
            atomic.copy_file(src, self.checkpoints_dir / src.name)
        start = atomic.read_json(snap / self.state_path.name, "restart the round from its start "
                                 f"with `augmine mine round {self.path} --redo`") or {}
        state = self.read_state()
        best = {k: v for k, v in start.items() if k.startswith("best_")}
        if best and any(state.get(k) != v for k, v in best.items()):
            self.write_state({**state, **best})
        return [self.checkpoints_dir / p.name for p in kept]
