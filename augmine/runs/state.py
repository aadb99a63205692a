"""A run's progress as one typed model: :class:`RunState`, the contents of its state file.

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

import json
import os
from pathlib import Path
from typing import Callable, Literal

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
