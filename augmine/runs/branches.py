"""The run folder's copies for rounds: ``checkpoints/round-N-start/`` (the run as round N
first found it) and ``branches/<group>/<name>/`` (run folders trained beside the run from
one start: a round's control, ``mine compare``'s modes). A part of
:class:`augmine.runs.rundir.RunDir`, which owns the layout; kept apart because it is one
job: copying a run's commit files (last/best checkpoints, state) atomically.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TypeVar

from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.runs.state import load_state

_Run = TypeVar("_Run", bound="RoundCopies")    # the class this is mixed into (RunDir)


def plan_digest(plan: dict) -> str:
    """The SHA-256 of a plan's dict (keys sorted): what a round's start record keeps to
    know the plan file still holds the plan the round started with."""
    text = json.dumps(plan, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RoundCopies:
    """Round snapshots and branches of a :class:`~augmine.runs.rundir.RunDir` (mixed into it:
    uses its ``path``, ``checkpoints_dir``, ``checkpoint``, ``state_path``, ``config_path``,
    ``history_path``, ``has_state``, ``read_state``, ``write_state`` and ``plan_ref``)."""

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
        complete. A plan in ``meta`` (its dict) is not copied: ``round.json`` refers to the
        round's plan file (``"plan": "plans/round-N.json"``) with the digest of the plan the
        round started with (``plan_sha256``, :func:`plan_digest`)."""
        snap = self.snapshot_dir(round_no)
        for src in self._sized_best(self.checkpoints_dir):
            atomic.copy_file(src, snap / src.name)
        for src, dst in self._snapshot_files(round_no):
            if src.is_file():
                atomic.copy_file(src, dst)
        atomic.write_json(snap / "round.json", self._plan_referred(round_no, meta))

    def snapshot_meta(self, round_no: int) -> dict | None:
        """The ``meta`` of round N's complete start snapshot, or None when there is none; a
        snapshot that holds its plan (before plans were stored once) reads as one that
        refers to it."""
        meta = atomic.read_json(self.snapshot_dir(round_no) / "round.json",
                                "restart the round from its start with "
                                f"`augmine mine round {self.path} --redo`")
        return None if meta is None else self._plan_referred(round_no, meta)

    def _plan_referred(self, round_no: int, meta: dict) -> dict:
        if not isinstance(meta.get("plan"), dict):
            return meta
        return {**meta, "plan": self.plan_ref(round_no), "plan_sha256": plan_digest(meta["plan"])}

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
        start_path = snap / self.state_path.name
        if start_path.is_file():
            start = load_state(start_path, lambda: "restart the round from its start with "
                               f"`augmine mine round {self.path} --redo`")
            best = {k: getattr(start, k) for k in start.model_fields_set if k.startswith("best_")}
            state = self.read_state()
            if any(getattr(state, k) != v for k, v in best.items()):
                self.write_state(state.model_copy(update=best))
        return [self.checkpoints_dir / p.name for p in kept]
