"""RunDir: the one owner of the run folder's layout and files."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from augmine.core.errors import AugmineError
from augmine.runs.rundir import HISTORY_COLUMNS, RunDir

PACKAGE = Path(__file__).resolve().parents[1] / "augmine"
# file and folder names only a run folder has ("reports" is also a state key, left out)
LAYOUT = {"config.yaml", "state.json", "history.csv", "checkpoints", "last.keras",
          "best.keras", "plans", "round.json", "suspects.csv"}


def test_history_rows_after_the_committed_state_are_dropped(tmp_path):
    run = RunDir(tmp_path / "run")
    for epoch in (1, 2, 3):
        run.append_history({"stage": "phase-1", "phase": 1, "size": 16, "epoch": epoch,
                            "lr": 0.0123456789, "loss": None})
    rows = run.read_history()
    assert tuple(rows[0]) == HISTORY_COLUMNS and rows[0]["lr"] == "0.0123457"
    assert rows[0]["loss"] == ""
    run.truncate_history(2)
    assert [r["epoch"] for r in run.read_history()] == ["1", "2"]
    assert not [p for p in run.path.iterdir() if p.name.startswith(".")]   # no temp files


def test_history_is_appended_with_one_header_and_a_cut_row_is_dropped(tmp_path):
    run = RunDir(tmp_path / "run")
    for epoch in (1, 2):
        run.append_history({"stage": "phase-1", "phase": 1, "size": 16, "epoch": epoch})
    first = run.history_path.read_text()
    ino = run.history_path.stat().st_ino
    run.append_history({"stage": "phase-1", "phase": 1, "size": 16, "epoch": 3})
    text = run.history_path.read_text()
    assert text.startswith(first) and run.history_path.stat().st_ino == ino   # appended
    assert text.count("stage,phase,size") == 1 and len(text.splitlines()) == 4
    with open(run.history_path, "a") as fh:          # an append cut short (power cut)
        fh.write("phase-1,1,1")
    run.truncate_history(3)
    assert [r["epoch"] for r in run.read_history()] == ["1", "2", "3"]
    run.append_history({"stage": "phase-1", "phase": 1, "size": 16, "epoch": 4})
    assert [r["epoch"] for r in run.read_history()] == ["1", "2", "3", "4"]


class _FakeModel:
    """Stands in for a Keras model: ``save`` writes ``label``."""

    def __init__(self, label: bytes):
        self.label = label

    def save(self, path):
        Path(path).write_bytes(self.label)


@pytest.mark.parametrize("links", [True, False])
def test_best_checkpoints_keep_their_bytes_when_last_is_saved_again(tmp_path, monkeypatch,
                                                                    links):
    from augmine.runs.factories import save_checkpoint

    if not links:                                     # a file system without hard links
        def refuse(src, dst):
            raise OSError(1, "Operation not permitted")
        monkeypatch.setattr("os.link", refuse)
    run = RunDir(tmp_path / "run")
    save_checkpoint(run, _FakeModel(b"epoch 1"))
    run.promote_best()
    run.promote_best(16)
    same = run.checkpoint("best").stat().st_ino == run.checkpoint("last").stat().st_ino
    assert same is links
    assert run.checkpoint("last").stat().st_nlink == (3 if links else 1)
    save_checkpoint(run, _FakeModel(b"epoch 2"))
    run.promote_best(16)
    save_checkpoint(run, _FakeModel(b"epoch 3"))
    assert run.checkpoint("last").read_bytes() == b"epoch 3"
    assert run.checkpoint("best").read_bytes() == b"epoch 1"
    assert run.checkpoint("best", 16).read_bytes() == b"epoch 2"
    run.promote_best(16)
    run.promote_best(16)                              # again: nothing changes, nothing left
    assert run.checkpoint("best", 16).read_bytes() == b"epoch 3"
    assert not [p for p in run.checkpoints_dir.iterdir() if p.name.startswith(".")]


def test_snapshot_and_restore_put_checkpoints_and_state_back(tmp_path):
    run = RunDir(tmp_path / "run")
    run.checkpoint("last").parent.mkdir(parents=True)
    run.checkpoint("last").write_bytes(b"epoch 5")
    run.write_state({"epochs_done": 5})
    assert run.snapshot_meta(1) is None
    run.snapshot(1, {"round": 1, "mode": "oversample"})
    run.checkpoint("last").write_bytes(b"epoch 7")
    run.write_state({"epochs_done": 7})
    assert run.snapshot_meta(1) == {"round": 1, "mode": "oversample"}
    run.restore(1)
    assert run.checkpoint("last").read_bytes() == b"epoch 5"
    assert run.read_state().epochs_done == 5


def test_bad_run_files_give_one_line_errors(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(AugmineError, match="not a run folder"):
        run.check()
    with pytest.raises(AugmineError, match="no state.json"):
        run.read_state()
    with pytest.raises(AugmineError, match="augmine mine plan"):
        run.read_plan(1)
    run.plan_path(1).parent.mkdir()
    run.plan_path(1).write_text("{not json")
    with pytest.raises(AugmineError, match="not valid JSON") as err:
        run.read_plan(1)
    assert "\n" not in str(err.value)
    run.config_path.write_text("name: x\nphases: []\n")
    with pytest.raises(AugmineError, match="'phases' is missing or empty") as err:
        run.config
    assert str(run.config_path) in str(err.value)
    assert run.data is None
    run.config_path.write_text("name: x\ndata: /somewhere\n")
    assert run.data == "/somewhere"           # a partial config still names its dataset


def test_the_layout_is_spelled_only_in_rundir():
    """No other module builds run-folder paths from the layout's names (RunDir's own parts,
    the classes it is made of, are RunDir)."""
    from augmine.runs.rundir import RunDir

    parts = {Path(sys.modules[c.__module__].__file__).resolve() for c in RunDir.__mro__
             if c.__module__.startswith("augmine.")}
    assert Path(PACKAGE / "runs" / "rundir.py").resolve() in parts
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.resolve() in parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
                      and n.body and isinstance(n.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    id(node) not in docstrings and node.value in LAYOUT:
                offenders.append(f"{path.name}:{node.lineno} {node.value!r}")
    assert not offenders, offenders
