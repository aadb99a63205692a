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

from augmine.cli import cli
from augmine.rundir import RunDir
from augmine.synth import write_synthetic_dataset

TINY = {"name": "tiny", "model": {"width": 8, "growth_rate": 4}, "batch_size": 32,
        "schedule": {"min_lr": 0.01, "max_lr": 0.1, "half_cycle": 20}, "seed": 0,
        "workers": 0, "mixed_precision": "false", "strategy": "default",
        "phases": [{"size": 16, "epochs": 1, "recipe": "none"}],
        "mining": {"policy": "bottom-k", "k": 2, "epochs": 1}}


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result) -> str:
    """The ``Error:`` line of a failed command; fails the test on a traceback or exit 0."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def write_config(folder: Path, **changes) -> Path:
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    """4 classes, 20 train and 5 val images each (generated)."""
    root = tmp_path_factory.mktemp("small") / "data"
    write_synthetic_dataset(root, num_classes=4, train_per_class=20, val_per_class=5, seed=1)
    return root


def spoil(root: Path) -> tuple[str, str]:
    """Truncate one train JPEG and turn one val JPEG into HTML; their paths under ``root``."""
    train = sorted((root / "train").glob("*/images/*.JPEG"))[3]
    train.write_bytes(train.read_bytes()[:100])
    val = sorted((root / "val" / "images").glob("*.JPEG"))[1]
    val.write_bytes(b"<html>not an image</html>")
    return str(train.relative_to(root)), str(val.relative_to(root))


@pytest.fixture
def bad_root(small_root, tmp_path) -> tuple[Path, tuple[str, str]]:
    root = tmp_path / "bad"
    shutil.copytree(small_root, root)
    return root, spoil(root)


# --------------------------------------------------------------------------- 1 class, bad images

def test_train_on_a_one_class_dataset_is_one_line(small_root, tmp_path):
    root = tmp_path / "one"
    shutil.copytree(small_root, root)
    keep = (root / "wnids.txt").read_text().split()[0]
    (root / "wnids.txt").write_text(keep + "\n")
    ann = root / "val" / "val_annotations.txt"
    ann.write_text("".join(l + "\n" for l in ann.read_text().splitlines() if keep in l))
    res = run_cli("train", write_config(tmp_path), "--data", root, "--run-dir", tmp_path / "run")
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
    from augmine.train import train_run

    import keras

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, root, run, progress=False, skip_bad=True, extra_callbacks=[Stop()])
    state = RunDir(run).read_state()
    assert state["skip_bad"] is True and state["skipped"] == sorted([bad_train, bad_val])

    # the files are repaired meanwhile: the resumed run still leaves them out (same index),
    # without --skip-bad typed again, and says so per file
    good = next(p for p in (root / bad_train).parent.iterdir() if p.name != Path(bad_train).name)
    shutil.copyfile(good, root / bad_train)
    res = run_cli("train", "--resume", "--run-dir", run, "--no-progress")
    assert res.exit_code == 0, res.output
    assert f"skipping {root / bad_train}: left out when the run started" in res.output
    assert RunDir(run).read_state()["skipped"] == sorted([bad_train, bad_val])
    assert [r["epoch"] for r in RunDir(run).read_history()] == ["1", "2"]

    # evaluate: the run's own dataset keeps its skipped files out; another copy of it needs
    # --skip-bad, which the error suggests
    res = run_cli("evaluate", run)
    assert res.exit_code == 0 and "(19 val images at 16 px)" in res.output, res.output
    other = tmp_path / "copy"
    shutil.copytree(root, other)
    line = one_line_error(run_cli("evaluate", run, "--data", other))
    assert bad_val in line and "pass --skip-bad" in line
    res = run_cli("evaluate", run, "--data", other, "--skip-bad")
    assert res.exit_code == 0 and f"skipping {other / bad_val}" in res.output, res.output


@pytest.mark.slow
def test_mine_round_and_suspects_with_a_file_spoilt_after_training(small_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(small_root, root)
    run = tmp_path / "run"
    res = run_cli("train", write_config(tmp_path), "--data", root, "--run-dir", run,
                  "--no-progress")
    assert res.exit_code == 0, res.output
    bad_train, _ = spoil(root)
    line = one_line_error(run_cli("mine", "round", run, "--no-progress"))
    assert bad_train in line and "pass --skip-bad" in line
    assert RunDir(run).snapshot_meta(1) is None            # failed before the round started
    res = run_cli("mine", "round", run, "--no-progress", "--skip-bad")
    assert res.exit_code == 0, res.output
    assert f"skipping {root / bad_train}" in res.output
    assert bad_train in RunDir(run).read_state()["skipped"]
    res = run_cli("mine", "suspects", run, "--per-class", "2")  # the run's record carries on
    assert res.exit_code == 0, res.output
    assert bad_train not in (run / "reports" / "round-1" / "suspects.csv").read_text()


@pytest.mark.slow
def test_demo_skip_bad(bad_root, tmp_path):
    root, (bad_train, bad_val) = bad_root
    out = tmp_path / "demo"
    args = ["demo", "--out", out, "--data", root, "--epochs", "1", "--round-epochs", "1"]
    line = one_line_error(run_cli(*args))
    assert bad_train in line and bad_val in line and "pass --skip-bad" in line
    assert not (out / "checkpoints").exists()
    res = run_cli(*args, "--skip-bad")
    assert res.exit_code == 0, res.output
    assert f"skipping {root / bad_val}" in res.output
    assert (out / "reports" / "round-1" / "report.json").is_file()


# --------------------------------------------------------------------------- read-only run folders

@pytest.fixture(scope="module")
def trained(small_root, tmp_path_factory) -> Path:
    """A run trained one epoch at 16 px on the small dataset (a phase-1 report, checkpoints)."""
    from augmine.train import train_run

    folder = tmp_path_factory.mktemp("trained")
    train_run(write_config(folder), small_root, folder / "run", progress=False)
    return folder / "run"


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` read-only for the block: a read-only bind mount as root (root ignores
    permission bits), else ``chmod -R a-w``. Skips the test where neither works."""
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(folder)], check=True)
        try:
            yield "permission denied"
        finally:
            subprocess.run(["chmod", "-R", "u+w", str(folder)], check=True)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)],
                             capture_output=True).returncode == 0
    if mounted and subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)],
                                  capture_output=True).returncode != 0:
        subprocess.run(["umount", str(folder)], check=True)
        mounted = False
    if not mounted:
        pytest.skip("cannot make a read-only folder here (root without mount rights)")
    try:
        yield "read-only file system"
    finally:
        subprocess.run(["umount", str(folder)], check=True)


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


def test_a_refused_write_past_the_checks_is_one_line(trained, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    monkeypatch.setattr(RunDir, "check_writable", lambda self, command="": self)
    with read_only(run):
        line = one_line_error(run_cli("mine", "plan", run))
    assert line.startswith(f"Error: cannot write {run / 'plans'}") or \
        line.startswith(f"Error: cannot write {run}"), line
    assert "run the same command again" in line
