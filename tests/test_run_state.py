"""A run's state.json as one typed RunState: its version stamp, old layouts, one-line errors,
and parsed once per command (a counter on the parse); a round's plan stored once."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

import augmine.runs.state as run_state
from augmine.cli import cli
from augmine.core.errors import AugmineError
from augmine.runs.state import plan_digest, RunState, STATE_VERSION
from augmine.runs.rundir import RunDir
from support import copy_run

# What augmine wrote before the version stamp (a trainer's state after 3 epochs).
UNSTAMPED = {"status": "done", "stage": "phase-3", "phase": 3, "phase_epochs_done": 1,
             "stage_epochs_done": 1, "epochs_done": 3, "step": 39, "planned_epochs": 3,
             "num_classes": 2, "class_ids": ["a", "b"], "class_names": ["ant", "bee"],
             "best_val_accuracy": 0.5, "best_epoch": 2,
             "best_by_size": {"32": {"val_accuracy": 0.5, "epoch": 2, "stage": "phase-2"}},
             "reports": ["phase-1", "phase-2", "phase-3"], "rounds": {}, "skip_bad": False,
             "skipped": [], "updated": "2026-01-01T00:00:00"}


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(res) -> str:
    assert res.exit_code == 1, res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.strip()]
    assert line.startswith("Error: ") and "Traceback" not in res.output
    return line


@pytest.fixture
def parses(monkeypatch):
    """``Counter`` of state files parsed (path -> times) from here on, the cache emptied
    first as in a new process."""
    counted: Counter = Counter()
    parse = run_state.parse_state

    def counting(data, path, fix):
        counted[path] += 1
        return parse(data, path, fix)

    run_state.forget_cached_states()
    monkeypatch.setattr(run_state, "parse_state", counting)
    return counted


@pytest.fixture
def reads(monkeypatch):
    """How many times ``RunDir.read_state`` is called from here on (``["n"]``)."""
    calls = {"n": 0}
    read = RunDir.read_state

    def counting(self):
        calls["n"] += 1
        return read(self)

    monkeypatch.setattr(RunDir, "read_state", counting)
    return calls


# --------------------------------------------------------------------------- the file

def test_the_version_is_written_and_an_unstamped_state_loads_keeping_unknown_keys(tmp_path):
    run = RunDir(tmp_path / "run")
    run.state_path.parent.mkdir()
    run.state_path.write_text(json.dumps({**UNSTAMPED, "note": {"by": "a user"}}))
    state = run.read_state()
    assert (state.version, state.epochs_done, state.best_by_size["32"].epoch) == (1, 3, 2)
    assert state.model_extra == {"note": {"by": "a user"}}
    run.write_state(state)
    written = json.loads(run.state_path.read_text())
    assert written == {**UNSTAMPED, "version": STATE_VERSION, "source": None,
                       "note": {"by": "a user"}}       # the same keys, stamped, nothing lost


def test_a_read_state_is_the_callers_copy(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_state(RunState(epochs_done=2))
    mine = run.read_state()
    mine.epochs_done = 9
    mine.reports.append("phase-1")
    assert (run.read_state().epochs_done, run.read_state().reports) == (2, [])
    run.write_state(mine)
    assert run.read_state().epochs_done == 9


def test_a_state_from_a_newer_augmine_is_one_line_naming_the_file_and_the_fix(tmp_path):
    run = RunDir(tmp_path / "run")
    run.state_path.parent.mkdir()
    run.state_path.write_text(json.dumps({**UNSTAMPED, "version": STATE_VERSION + 1,
                                          "epochs_done": {"a layout": "of the future"}}))
    with pytest.raises(AugmineError) as err:
        run.read_state()
    assert str(err.value) == (
        f"{run.state_path}: written by a newer augmine (state version {STATE_VERSION + 1}; "
        f"this one reads up to {STATE_VERSION}); upgrade augmine (`pip install -U augmine`) "
        "to open this run")


@pytest.mark.slow
@pytest.mark.backend
def test_a_malformed_field_is_one_line_naming_the_file_the_field_and_the_rebuild(
        trained_run, tmp_path):
    run = copy_run(trained_run.run_dir, tmp_path)
    state = json.loads((run / "state.json").read_text())
    (run / "state.json").write_text(json.dumps({**state, "epochs_done": "three"}))
    line = one_line_error(run_cli("train", "--run-dir", run, "--resume", "--no-progress"))
    assert line.startswith(f"Error: {run / 'state.json'}: field 'epochs_done': Input should "
                           "be a valid integer")
    assert f"`augmine train --run-dir {run} --rebuild-state`" in line
    # the suggested rebuild works (the damaged file kept), and the resume after it
    assert run_cli("train", "--run-dir", run, "--rebuild-state").exit_code == 0
    assert json.loads((run / "state-damaged.json").read_text())["epochs_done"] == "three"
    assert RunDir(run).read_state().epochs_done == 3


# --------------------------------------------------------------------------- parsed once

@pytest.mark.slow
@pytest.mark.backend
def test_evaluate_parses_the_state_once(trained_run, parses):
    res = run_cli("evaluate", trained_run.run_dir)
    assert res.exit_code == 0, res.output
    assert parses == {RunDir(trained_run.run_dir).state_path: 1}


@pytest.mark.slow
@pytest.mark.backend
def test_a_resumed_training_parses_its_state_once_never_after_its_own_writes(
        trained_run, tmp_path, parses, reads):
    run = copy_run(trained_run.run_dir, tmp_path)
    res = run_cli("train", "--run-dir", run, "--resume", "--epochs", "2", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "epochs    4/4" in res.output
    assert reads["n"] >= 2
    assert parses == {RunDir(run).state_path: 1}


@pytest.mark.slow
@pytest.mark.backend
def test_a_round_parses_each_state_once_and_stores_its_plan_once(mining_run, tmp_path,
                                                                   parses, reads):
    from augmine.analysis.reports import load_stage_report

    run = RunDir(copy_run(mining_run, tmp_path))
    res = run_cli("mine", "round", run, "--epochs", "1", "--no-progress")
    assert res.exit_code == 0, res.output
    assert reads["n"] >= 3
    control = run.branch_dir("round-1", "control") / run.state_path.name
    start = run.snapshot_dir(1) / run.state_path.name
    # the run's, its control's (a copy when the control starts) and the round's start
    # snapshot's (best put back from it): each parsed once, never again after a write
    assert parses == {run.state_path: 1, control: 1, start: 1}

    plan = json.loads(run.plan_path(1).read_text())
    report = json.loads(run.report_file("round-1", "report.json").read_text())
    started = json.loads((run.snapshot_dir(1) / "round.json").read_text())
    assert report["plan"] == started["plan"] == "plans/round-1.json"
    assert started["plan_sha256"] == plan_digest(plan)
    assert load_stage_report(run, "round-1")["plan"] == plan     # read from the plan file
    markdown = run.report_file("round-1", "report.md").read_text()     # rendered with it
    assert all(f"- {n}: x" in markdown for n in plan["weak_names"])
    history = run_cli("mine", "history", run)
    assert history.exit_code == 0 and all(n in history.output for n in plan["weak_names"])

    # a run written before plans were stored once (its report and start record hold the
    # plan) reads the same
    (run.snapshot_dir(1) / "round.json").write_text(json.dumps({**started, "plan": plan}))
    run.report_file("round-1", "report.json").write_text(json.dumps({**report, "plan": plan}))
    assert run.snapshot_meta(1) == started
    assert load_stage_report(run, "round-1")["plan"] == plan
    assert run_cli("mine", "history", run).output == history.output


def test_a_round_report_refers_to_its_plan_file_which_must_stay(tmp_path):
    import numpy as np

    from augmine.analysis.plans import OversamplingPlan
    from augmine.analysis.reports import load_stage_report, write_stage_report

    run = RunDir(tmp_path / "run")
    plan = OversamplingPlan(np.array([3.0, 1.0]), [0], ["a", "b"], ["ant", "bee"])
    y, probs = np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])

    def report(stage):
        write_stage_report(run, stage, y, probs, ["a", "b"], ["ant", "bee"], plan=plan)
        return json.loads(run.report_file(stage, "report.json").read_text())["plan"]

    assert report("round-1") == plan.to_dict()     # no plan file holds it: kept in the report
    run.write_plan(2, plan.to_dict())
    assert report("round-2") == "plans/round-2.json"
    assert load_stage_report(run, "round-2")["plan"] == plan.to_dict()
    run.plan_path(2).unlink()
    with pytest.raises(AugmineError) as err:
        load_stage_report(run, "round-2")
    assert str(err.value) == (f"{run.plan_path(2)} is missing; "
                              f"{run.report_file('round-2', 'report.json')} refers to it; put "
                              "the run's plans/ back from a copy of the run")


def test_a_start_record_refers_to_the_plan_file_and_an_old_one_reads_the_same(tmp_path):
    run = RunDir(tmp_path / "run")
    plan = {"class_ids": ["a", "b"], "factors": [3.0, 1.0], "weak": [0]}
    run.snapshot(1, {"round": 1, "mode": "oversample", "plan": plan})
    stored = json.loads((run.snapshot_dir(1) / "round.json").read_text())
    assert stored == {"round": 1, "mode": "oversample", "plan": "plans/round-1.json",
                      "plan_sha256": plan_digest(plan)}
    (run.snapshot_dir(1) / "round.json").write_text(json.dumps({**stored, "plan": plan}))
    assert run.snapshot_meta(1) == stored
    assert plan_digest({**plan, "factors": [2.0, 1.0]}) != plan_digest(plan)
