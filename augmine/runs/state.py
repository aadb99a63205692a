"""A run's progress as one typed model (:class:`RunState`, the contents of its state file),
and the run folder's copies for rounds (round snapshots and branch run folders).

The trainer (:func:`~augmine.runs.starts.new_state`), ``PerClassReport`` (a user's own
``model.fit``, ``source="PerClassReport"``, no phase fields) and ``train --rebuild-state``
build the same model; every reader asks its attributes. :class:`~augmine.runs.rundir.RunDir`
owns the file: ``read_state`` and ``write_state`` (the only writer, atomic) go through
:func:`load_state` and :func:`store_state` here.

Version: every file carries ``version`` (:data:`STATE_VERSION`). A file without one (written
before the stamp) has version 1's layout and loads as it is; a newer version is a one-line
error (upgrade augmine); a field of the wrong type is a one-line error naming the file, the
field and how to get the state back. Keys this version does not know are kept (``extra``)
and written back, so nothing is lost.

Parsed once: a process-wide cache holds the last state read or written per file, keyed by
the file's ``(st_mtime_ns, st_size, st_ino)``; reading an unchanged file again costs a
``stat``, not a parse. Every write replaces the file (a new inode), and refreshes the cache.
(A file rewritten in place by another program to the same size within one tick of the file
system's clock would go unseen; augmine never writes in place.) Callers get their own deep
copy: changing it changes nothing until ``write_state``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from augmine.core import atomic
from augmine.core.errors import AugmineError


STATE_VERSION = 1


class _StatePart(BaseModel):
    model_config = ConfigDict(extra="allow", validate_assignment=True)


class BestAtSize(_StatePart):
    """The best val accuracy at one image size (``best_by_size[str(size)]``)."""

    val_accuracy: float
    epoch: int
    stage: str | None = None


class RoundProgress(_StatePart):
    """One extra-epoch stage (a mining round or an arm), ``rounds[stage]``."""

    epochs: int
    epochs_done: int = 0
    done: bool = False
    frozen: list[str] | None = None       # layers frozen while only the head trains


class RunState(_StatePart):
    """A run's progress: what ``--resume`` continues from and what readers report.

    ``phase``/``phase_epochs_done`` are None in a ``PerClassReport`` folder (no phases);
    ``stage``/``stage_epochs_done``: the stage training now (a phase, a round or an
    ``epoch-N`` report); ``step``: the optimizer's step; ``best_*``: val accuracy over the
    run and per image size; ``reports``: the stages whose report is written; ``rounds``:
    extra-epoch stages; ``skip_bad``/``skipped``: images left out (``--skip-bad``)."""

    version: int = STATE_VERSION
    status: Literal["running", "done"] = "running"
    source: str | None = None
    stage: str | None = None
    phase: int | None = None
    phase_epochs_done: int | None = None
    stage_epochs_done: int = 0
    epochs_done: int = 0
    step: int = 0
    planned_epochs: int | None = None
    num_classes: int | None = None
    class_ids: list[str] = Field(default_factory=list)
    class_names: list[str] = Field(default_factory=list)
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    best_by_size: dict[str, BestAtSize] = Field(default_factory=dict)
    reports: list[str] = Field(default_factory=list)
    rounds: dict[str, RoundProgress] = Field(default_factory=dict)
    skip_bad: bool = False
    skipped: list[str] = Field(default_factory=list)
    updated: str | None = None

    def stage_done(self, stage: str) -> int:
        """Epochs committed of ``stage``: ``stage_epochs_done`` when it is the stage now, else 0."""
        return int(self.stage_epochs_done) if self.stage == stage else 0

    def to_json(self) -> dict:
        """The file's contents: every field (and every kept unknown key) as plain JSON."""
        return self.model_dump(mode="json")


def parse_state(data: bytes, path: Path, fix: Callable[[], str]) -> RunState:
    """The :class:`RunState` in ``data`` (the bytes of the state file ``path``); one-line
    errors for bad JSON, a newer version or a malformed field, ending with ``fix()``."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = str(exc) if isinstance(exc, json.JSONDecodeError) else "not text"
        raise AugmineError(f"{path}: not valid JSON ({where}); {fix()}") from None
    if not isinstance(raw, dict):
        raise AugmineError(f"{path}: not a training state (a JSON {type(raw).__name__}); "
                           f"{fix()}")
    version = raw.setdefault("version", 1)        # unstamped: version 1's layout
    if type(version) in (int, float) and version > STATE_VERSION:
        raise _newer(path, version)
    try:
        state = RunState.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "the state"
        got = repr(err.get("input"))
        got = got if len(got) <= 40 else got[:37] + "..."
        raise AugmineError(f"{path}: field {field!r}: {err['msg']} (got {got}); "
                           f"{fix()}") from None
    if state.version > STATE_VERSION:
        raise _newer(path, state.version)
    if state.version < 1:
        raise AugmineError(f"{path}: field 'version': {state.version} is no state version "
                           f"(1 to {STATE_VERSION}); {fix()}")
    return state


def _newer(path: Path, version) -> AugmineError:
    return AugmineError(f"{path}: written by a newer augmine (state version {version}; this one "
                        f"reads up to {STATE_VERSION}); upgrade augmine (`pip install -U "
                        "augmine`) to open this run")


# path -> ((st_mtime_ns, st_size, st_ino), the state as read or written)
_cache: dict[Path, tuple[tuple[int, int, int], RunState]] = {}


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_mtime_ns, st.st_size, st.st_ino


def load_state(path: Path, fix: Callable[[], str]) -> RunState:
    """The state in the file ``path`` (a copy of the cached one while the file is unchanged,
    else parsed by :func:`parse_state`)."""
    st = os.stat(path)
    hit = _cache.get(path)
    if hit is None or hit[0] != _stamp(st):
        hit = (_stamp(st), parse_state(path.read_bytes(), path, fix))
        _cache[path] = hit
    return hit[1].model_copy(deep=True)


def store_state(path: Path, state: "RunState | dict") -> Path:
    """Write ``state`` (a RunState, or a dict of its fields) to ``path`` atomically, stamped
    with this version, and keep it as the cached state of the new file."""
    state = state.model_copy(deep=True) if isinstance(state, RunState) else \
        RunState.model_validate(state)
    state.version = STATE_VERSION
    atomic.write_json(path, state.to_json())
    _cache[path] = (_stamp(os.stat(path)), state)
    return path


def forget_cached_states() -> None:
    """Drop every cached state, so that the next read of each file parses it (a test that
    counts parses per command starts here)."""
    _cache.clear()


# =========================================================================== branches
# The run folder's copies for rounds: ``checkpoints/round-N-start/`` (the run as round N
# first found it) and ``branches/<group>/<name>/`` (run folders trained beside the run from
# one start: a round's control, ``mine compare``'s modes). A part of
# :class:`augmine.runs.rundir.RunDir`, which owns the layout; kept apart because it is one
# job: copying a run's commit files (last/best checkpoints, state) atomically.

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
