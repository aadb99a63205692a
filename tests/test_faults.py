"""Faults a user meets: a 1-class dataset, bad images met by training, evaluation, rounds and
the demo (``--skip-bad``), read-only run folders, interrupted rounds, and SIGKILL at
chosen moments of training and mining (each resumed to a consistent run)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from support import ONE_PHASE, copy_run, read_only, spoil, write_config

from augmine.cli import cli
from augmine.runs.rundir import RunDir


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result) -> str:
    """The ``Error:`` line of a failed command; fails the test on a traceback or exit 0."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture
def bad_root(synth_root, tmp_path) -> tuple[Path, tuple[str, str]]:
    """A copy of the generated dataset with one truncated train and one fake val JPEG."""
    root = tmp_path / "bad"
    shutil.copytree(synth_root, root)
    return root, spoil(root)


# --------------------------------------------------------------------------- 1 class, bad images

def test_train_on_a_one_class_dataset_is_one_line(synth_root, tmp_path):
    root = tmp_path / "one"
    shutil.copytree(synth_root, root)
    keep = (root / "wnids.txt").read_text().split()[0]
    (root / "wnids.txt").write_text(keep + "\n")
    ann = root / "val" / "val_annotations.txt"
    ann.write_text("".join(l + "\n" for l in ann.read_text().splitlines() if keep in l))
    res = run_cli("train", write_config(tmp_path, phases=ONE_PHASE), "--data", root,
                  "--run-dir", tmp_path / "run")
    line = one_line_error(res)
    assert f"{root}: training needs at least 2 classes, this dataset has 1" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_bad_images_fail_train_up_front_and_skip_bad_works_as_suggested(bad_root, tmp_path):
    root, (bad_train, bad_val) = bad_root
    cfg = write_config(tmp_path, phases=[{"size": 16, "epochs": 2, "recipe": "none"}])
    run = tmp_path / "run"
    args = ["train", cfg, "--data", root, "--run-dir", run, "--no-progress"]
    line = one_line_error(run_cli(*args))
    # found before any epoch: both files named, nothing written, the fix is an option
    assert "2 bad file(s)" in line and bad_train in line and bad_val in line
    assert "pass --skip-bad" in line and not run.exists()

    # the suggestion, typed as printed; interrupted after epoch 1 (a KeyboardInterrupt)
    from augmine.train.phases import train_run

    import keras

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, root, run, progress=False, skip_bad=True, extra_callbacks=[Stop()])
    state = RunDir(run).read_state()
    assert state.skip_bad is True and state.skipped == sorted([bad_train, bad_val])

    # the files are repaired meanwhile: the resumed run still leaves them out (same index),
    # without --skip-bad typed again, and says so per file
    good = next(p for p in (root / bad_train).parent.iterdir() if p.name != Path(bad_train).name)
    shutil.copyfile(good, root / bad_train)
    res = run_cli("train", "--resume", "--run-dir", run, "--no-progress")
    assert res.exit_code == 0, res.output
    assert f"skipping {root / bad_train}: left out when the run started" in res.output
    assert RunDir(run).read_state().skipped == sorted([bad_train, bad_val])
    assert [r["epoch"] for r in RunDir(run).read_history()] == ["1", "2"]

    # evaluate: the run's own dataset keeps its skipped files out; another copy of it needs
    # --skip-bad, which the error suggests
    res = run_cli("evaluate", run)
    assert res.exit_code == 0 and "(99 val images at 16 px)" in res.output, res.output
    other = tmp_path / "copy"
    shutil.copytree(root, other)
    line = one_line_error(run_cli("evaluate", run, "--data", other))
    assert bad_val in line and "pass --skip-bad" in line
    res = run_cli("evaluate", run, "--data", other, "--skip-bad")
    assert res.exit_code == 0 and f"skipping {other / bad_val}" in res.output, res.output


@pytest.mark.slow
def test_mine_round_and_suspects_with_a_file_spoilt_after_training(synth_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    run = tmp_path / "run"
    res = run_cli("train", write_config(tmp_path, phases=ONE_PHASE), "--data", root,
                  "--run-dir", run, "--no-progress")
    assert res.exit_code == 0, res.output
    bad_train, _ = spoil(root)
    line = one_line_error(run_cli("mine", "round", run, "--no-progress"))
    assert bad_train in line and "pass --skip-bad" in line
    assert RunDir(run).snapshot_meta(1) is None            # failed before the round started
    res = run_cli("mine", "round", run, "--no-progress", "--skip-bad", "--epochs", "1")
    assert res.exit_code == 0, res.output
    assert f"skipping {root / bad_train}" in res.output
    assert bad_train in RunDir(run).read_state().skipped
    res = run_cli("mine", "suspects", run, "--per-class", "2")  # the run's record carries on
    assert res.exit_code == 0, res.output
    assert bad_train not in (run / "reports" / "round-1" / "suspects.csv").read_text()


@pytest.mark.slow
def test_demo_skip_bad(demo_run):
    """conftest.demo_run: the demo on a dataset with a bad train and a bad val file."""
    bad_train, bad_val = demo_run.bad
    line = one_line_error(demo_run.refused)
    assert bad_train in line and bad_val in line and "pass --skip-bad" in line
    res = demo_run.result                                  # the same command, --skip-bad
    assert res.exit_code == 0, res.output
    assert f"skipping {demo_run.data / bad_val}" in res.output
    assert (demo_run.out / "reports" / "round-1" / "report.json").is_file()
    assert not demo_run.trained_when_refused          # refused before any training


# --------------------------------------------------------------------------- read-only run folders

@pytest.fixture
def trained(trained_run) -> Path:
    """The session's tiny run (conftest.trained_run): checkpoints and phase reports."""
    return trained_run.run_dir


@pytest.mark.slow
@pytest.mark.parametrize("command", [["mine", "plan"], ["mine", "round", "--no-progress"],
                                     ["mine", "suspects"], ["train", "--resume", "--run-dir"]])
def test_read_only_run_folder_is_one_line_naming_it_and_the_fix(trained, tmp_path, command):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    with read_only(run) as why:
        line = one_line_error(run_cli(*command, run))
    assert f"Error: {run} is not writable ({why}); `augmine {' '.join(command[:2])}" in line
    assert f"cp -r {run} COPY" in line or f"chmod -R u+w {run}" in line
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before   # nothing touched


@pytest.mark.slow
def test_read_only_place_for_a_new_run_and_a_read_only_subfolder(trained, tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    with read_only(parent) as why:
        line = one_line_error(run_cli("train", write_config(tmp_path), "--data", "x",
                                      "--run-dir", parent / "run"))
    assert f"{parent} is not writable ({why}), so `augmine train` cannot make" in line
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    with read_only(run / "reports" / "phase-1") as why:
        line = one_line_error(run_cli("mine", "suspects", run))
    assert f"{run / 'reports' / 'phase-1'} is not writable ({why})" in line


@pytest.mark.slow
def test_a_refused_write_past_the_checks_is_one_line(trained, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    monkeypatch.setattr(RunDir, "check_writable", lambda self, command="": self)
    with read_only(run):
        line = one_line_error(run_cli("mine", "plan", run))
    assert line.startswith(f"Error: cannot write {run / 'plans'}") or \
        line.startswith(f"Error: cannot write {run}"), line
    assert "run the same command again" in line


# --------------------------------------------------------------------------- rounds cannot dead-end

def suggestions(line: str) -> list[list[str]]:
    """The commands an error line suggests (in backticks), as argument lists without `augmine`."""
    import re
    import shlex

    cmds = [shlex.split(c) for c in re.findall(r"`([^`]+)`", line)]
    assert cmds and all(c[0] == "augmine" for c in cmds), line
    return [c[1:] for c in cmds]


def interrupt_round(run: Path, **kwargs) -> None:
    """Start the next mining round of ``run`` and stop it after its first epoch (Ctrl-C)."""
    import keras

    from augmine.rounds.runner import run_round

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_round(run, epochs=2, progress=False, extra_callbacks=[Stop()], **kwargs)


@pytest.fixture(scope="module")
def round_2_interrupted(round_run, tmp_path_factory) -> Path:
    """conftest.round_run (round 1 done) with round 2 interrupted after its first of 2 epochs."""
    from augmine.rounds.plans import round_status

    run = copy_run(round_run.run, tmp_path_factory.mktemp("r2"))
    interrupt_round(run)
    assert round_status(run, 2) == "interrupted"
    return run


def round_epochs(run: Path, stage: str) -> list[int]:
    return [int(r["epoch"]) for r in RunDir(run).read_history() if r["stage"] == stage]


@pytest.mark.slow
def test_plan_keeps_an_interrupted_rounds_plan_and_each_suggestion_works(round_2_interrupted,
                                                                          tmp_path):
    """An interrupted round (conftest.round_run's round 2, stopped after its first epoch)
    resumes to a consistent run, and is redone from its start (once
    test_rounds.py::test_interrupted_round_resumes_to_a_consistent_run)."""
    from augmine.analysis.reports import list_stage_reports
    from augmine.rounds.plans import round_status

    run = copy_run(round_2_interrupted, tmp_path)
    # interrupted after 1 of its 2 epochs: in the history, no report yet
    start = max(round_epochs(run, "round-1"))
    assert round_epochs(run, "round-2") == [start + 1]
    assert not (run / "reports" / "round-2" / "report.json").exists()
    assert [r["stage"] for r in list_stage_reports(run)] == ["phase-1", "round-1"]
    plan_before = (run / "plans" / "round-2.json").read_text()
    line = one_line_error(run_cli("mine", "plan", run, "--k", "3"))
    assert "round 2" in line and "was interrupted" in line and "--force" in line
    assert (run / "plans" / "round-2.json").read_text() == plan_before       # kept
    resume, force, redo = suggestions(line)
    assert resume == ["mine", "round", str(run)] and force[-1] == "--force"

    # 1st suggestion: resume the round as it was (only its missing epoch is trained)
    first = round_epochs(run, "round-2")
    res = run_cli(*resume, "--no-progress")
    assert res.exit_code == 0 and "resumed after an interruption" in res.output, res.output
    assert round_status(run, 2) == "done" and round_epochs(run, "round-2") == first + [
        first[0] + 1]
    assert RunDir(run).read_state().epochs_done == start + 2
    report = json.loads((run / "reports" / "round-2" / "report.json").read_text())
    assert report["meta"]["epochs_done"] == start + 2

    # 2nd and 3rd: replace the plan (--force, same options), then redo the round
    first_copy, run = run, copy_run(round_2_interrupted, tmp_path, "run-b")
    res = run_cli(*[str(run) if a == str(first_copy) else a for a in force], "--k", "3")
    assert res.exit_code == 0, res.output
    assert f"run it with `augmine mine round {run} --redo`" in res.output
    assert json.loads((run / "plans" / "round-2.json").read_text())["policy"]["k"] == 3
    line = one_line_error(run_cli("mine", "round", run, "--no-progress"))  # plan changed
    assert "interrupted with another plan" in line
    (cmd,) = suggestions(line)
    assert cmd == ["mine", "round", str(run), "--redo"]
    res = run_cli(*cmd, "--epochs", "2", "--no-control", "--no-progress")
    assert res.exit_code == 0 and "chose 3 classes" in res.output, res.output
    # redone from the round's start: its epochs replace the interrupted attempt's
    assert round_status(run, 2) == "done" and round_epochs(run, "round-2") == [start + 1,
                                                                               start + 2]
    assert RunDir(run).read_state().epochs_done == start + 2
    assert [r["stage"] for r in list_stage_reports(run)] == ["phase-1", "round-1", "round-2"]


@pytest.mark.slow
def test_round_errors_suggest_commands_that_work(round_2_interrupted, tmp_path):
    """Each suggested command works as printed (with --epochs 1; the rounds after the
    class-weight one with --no-control: the control is not what they check)."""
    from augmine.rounds.plans import round_status

    run = copy_run(round_2_interrupted, tmp_path)
    # redoing round 1 while round 2 is in progress: --redo redoes the latest, round 2
    line = one_line_error(run_cli("mine", "round", run, "--round", "1", "--redo"))
    (cmd,) = suggestions(line)
    assert cmd == ["mine", "round", str(run), "--redo"] and "redoes round 2" in line
    # another mode than the interrupted attempt's: both ways out work
    line = one_line_error(run_cli("mine", "round", run, "--mode", "class-weight"))
    resume, restart = suggestions(line)
    assert resume == ["mine", "round", str(run), "--mode", "oversample"]
    assert restart == ["mine", "round", str(run), "--mode", "class-weight", "--redo"]
    res = run_cli(*restart, "--epochs", "1", "--no-progress")
    assert res.exit_code == 0 and "round 2 (class weights x3.0" in res.output, res.output
    rep = json.loads((run / "reports" / "round-2" / "report.json").read_text())
    assert rep["meta"]["mode"] == "class-weight" and rep["effect"]["control"]
    # a done round: run the next, or redo this one
    line = one_line_error(run_cli("mine", "round", run, "--round", "2"))
    nxt, redo = suggestions(line)
    assert nxt == ["mine", "round", str(run)] and redo == nxt + ["--redo"]
    res = run_cli(*redo, "--epochs", "1", "--no-control", "--no-progress")
    assert res.exit_code == 0 and "round 2 (oversample" in res.output, res.output
    start = max(round_epochs(run, "round-1"))          # the redo's epoch replaced the last
    assert round_epochs(run, "round-2") == [start + 1]
    assert RunDir(run).read_state().epochs_done == start + 1
    # an earlier done round has no --redo to offer
    line = one_line_error(run_cli("mine", "round", run, "--round", "1"))
    assert suggestions(line) == [nxt] and "--redo" not in line
    res = run_cli(*nxt, "--epochs", "1", "--no-control", "--no-progress")
    assert res.exit_code == 0 and round_status(run, 3) == "done", res.output
    # a broken start record of an interrupted round: its suggested --redo rebuilds it
    interrupt_round(run)
    (run / "checkpoints" / "round-4-start" / "round.json").write_text("{broken")
    line = one_line_error(run_cli("mine", "round", run))
    (cmd,) = suggestions(line)
    assert cmd == ["mine", "round", str(run), "--redo"]
    res = run_cli(*cmd, "--epochs", "1", "--no-control", "--no-progress")
    assert res.exit_code == 0 and round_status(run, 4) == "done", res.output


# --------------------------------------------------------------------------- SIGKILL, then resume

# Run in a subprocess: train (or run a mining round) and SIGKILL itself at the chosen moment:
# "mid-epoch" (a callback, at the Nth training batch), "checkpoint" (inside the Nth atomic
# write of last.keras: the temporary file is written, not yet renamed) or "report" (inside
# the write of a report's report.md: some report files written, report.json not yet).
KILLER = """
import contextlib, os, signal, sys

import keras

from augmine.core import atomic

kind, moment, nth, run = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
seen = {"n": 0}


def count_and_die():
    seen["n"] += 1
    if seen["n"] == nth:
        os.kill(os.getpid(), signal.SIGKILL)


class KillMidEpoch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        count_and_die()


real = atomic.atomic_path
target_name = {"checkpoint": "last.keras", "report": "report.md"}.get(moment)


@contextlib.contextmanager
def killing(target, suffix=None, sync=True):
    with real(target, suffix, sync) as tmp:
        yield tmp
        if os.path.basename(target) == target_name:
            count_and_die()


atomic.atomic_path = killing
extra = [KillMidEpoch()] if moment == "mid-epoch" else []
if kind == "train":
    from augmine.train.phases import train_run
    train_run(sys.argv[5], sys.argv[6], run, progress=False, extra_callbacks=extra)
else:
    from augmine.rounds.runner import run_round
    run_round(run, epochs=2, progress=False, extra_callbacks=extra)
print("not killed")
"""

FAULT_PHASES = [{"size": 16, "epochs": 2, "recipe": "none"},
                {"size": 32, "epochs": 1, "recipe": "none"}]


def processes_with(token: str) -> list[int]:
    """Pids of live processes whose environment holds ``token`` (the killed run's workers
    and fork server inherit it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if token.encode() in (proc / "environ").read_bytes() and \
                    (proc / "stat").read_text().split(")")[-1].split()[0] != "Z":
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def kill_at(kind: str, moment: str, nth: int, run: Path, *args) -> None:
    """Run KILLER in a subprocess and check that it died of SIGKILL and left no process."""
    import signal
    import sys
    import time
    import uuid

    token = f"AUGMINE_FAULT_TEST={uuid.uuid4().hex}"
    env = {**os.environ, "AUGMINE_FAULT_TEST": token.split("=")[1],
           "PYTHONPATH": str(Path(__file__).resolve().parents[1]) + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", KILLER, kind, moment, str(nth), str(run),
                           *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr[-3000:])
    deadline = time.time() + 15
    while processes_with(token) and time.time() < deadline:
        time.sleep(0.2)
    assert processes_with(token) == [], "the killed run left worker processes behind"


def assert_every_file_loads(run: Path) -> None:
    """Every file of the run folder is whole: checkpoints load, JSON/CSV/NPY parse, no
    temporary files of interrupted writes are left."""
    import csv

    import numpy as np

    from augmine.runs.factories import load_checkpoint

    files = [p for p in run.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".")], "leftover temporary files"
    for p in files:
        if p.suffix == ".keras":
            assert load_checkpoint(p, compile=False) is not None
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".csv":
            assert list(csv.DictReader(p.open()))
        elif p.suffix in (".npy", ".npz"):
            np.load(p)
        elif p.suffix in (".png", ".md", ".yaml"):
            assert p.stat().st_size > 0


def assert_no_worker_children() -> None:
    import multiprocessing

    assert multiprocessing.active_children() == []


@pytest.mark.slow
@pytest.mark.parametrize("moment,nth", [("mid-epoch", 18), ("checkpoint", 2), ("report", 1)])
def test_sigkill_during_training_then_resume(synth_root, tmp_path, moment, nth):
    import numpy as np

    from augmine.train.phases import train_run
    from augmine.runs.factories import load_checkpoint

    cfg = write_config(tmp_path, workers=2, phases=FAULT_PHASES)
    run = tmp_path / "run"
    kill_at("train", moment, nth, run, cfg, synth_root)
    state = RunDir(run).read_state()
    assert state.status == "running"
    if moment == "report":                  # killed writing phase-1's report: not complete
        assert state.epochs_done == 2 and not (run / "reports" / "phase-1" /
                                                  "report.json").exists()
        assert (run / "reports" / "phase-1" / "per_class.csv").is_file()
    else:                                   # killed in epoch 2: epoch 1 is committed
        assert state.epochs_done == 1
    if moment == "checkpoint":              # the half-done write's temporary file is there
        assert [p.name for p in (run / "checkpoints").iterdir()
                if p.name.startswith(".last.keras.")]

    result = train_run(None, None, run, resume=True, progress=False)
    assert result.state.status == "done" and result.state.epochs_done == 3
    rows = RunDir(run).read_history()
    assert [(r["stage"], r["epoch"]) for r in rows] == [("phase-1", "1"), ("phase-1", "2"),
                                                        ("phase-2", "3")]
    assert sorted(p.name for p in (run / "reports").iterdir()) == ["phase-1", "phase-2"]
    # at the planned LR step: 400 images / batch 32 = 13 steps per epoch, in the checkpoint too
    assert result.state.step == 3 * 13
    assert int(np.asarray(load_checkpoint(run / "checkpoints" / "last.keras").optimizer
                          .iterations)) == 3 * 13
    assert_every_file_loads(run)
    assert_no_worker_children()
    # resuming a finished run changes nothing
    assert train_run(None, None, run, resume=True, progress=False).state.epochs_done == 3
    assert len(RunDir(run).read_history()) == 3


@pytest.mark.slow
@pytest.mark.parametrize("moment,nth", [("mid-epoch", 25), ("report", 1)])
def test_sigkill_during_a_mining_round_then_resume(mining_run, tmp_path, moment, nth):
    """Killed in the round's 2nd epoch (560 images / 32 = 18 steps an epoch) or writing its
    report; the config asks for 1 round epoch, the interrupted attempt's 2 are kept."""
    from augmine.rounds.plans import round_status

    run = copy_run(mining_run, tmp_path)
    start = RunDir(run).read_state().epochs_done
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg = {**cfg, "workers": 2, "mining": {**cfg["mining"], "epochs": 1}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    kill_at("round", moment, nth, run)
    assert round_status(run, 1) == "interrupted"

    res = run_cli("mine", "round", run, "--no-progress")   # epochs: the interrupted attempt's
    assert res.exit_code == 0 and "resumed after an interruption" in res.output, res.output
    assert round_status(run, 1) == "done"
    assert round_epochs(run, "round-1") == [start + 1, start + 2]
    assert RunDir(run).read_state().epochs_done == start + 2
    assert_every_file_loads(run)
    assert_no_worker_children()
