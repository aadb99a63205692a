"""Starting and resuming runs safely: a run's work is never overwritten (a lost state.json is
rebuilt, not started over), a resume continues the same run (another config or dataset is
refused, more last-phase epochs are applied and printed), every check comes before the first
write, and the messages of damaged files say what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from support import ONE_PHASE, copy_run, write_config
from test_faults import one_line_error, run_cli, suggestions

from augmine.runs.rundir import RunDir


def snapshot(run: Path) -> dict:
    """Bytes and mtimes of the run's checkpoints, reports and history (what must survive)."""
    files = RunDir(run).work_files()
    assert files, run
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    """A private copy of conftest.trained_run (3 phases of 1 epoch: 16, 32, 64 px)."""
    return copy_run(trained_run.run_dir, tmp_path)


@pytest.fixture
def run_config(trained_run) -> Path:
    """The config file trained_run was started from."""
    return trained_run.run_dir.parent / "train.yaml"


# --------------------------------------------------------------------------- never overwrite

@pytest.mark.slow
@pytest.mark.backend
def test_a_run_without_state_is_refused_and_rebuilt_never_started_afresh(run_copy, run_config,
                                                                         synth_root):
    run = run_copy
    whole = json.loads((run / "state.json").read_text())
    (run / "state.json").unlink()
    before = snapshot(run)
    line = one_line_error(run_cli("train", run_config, "--data", synth_root, "--run-dir", run))
    assert f"{run}: holds checkpoints/best-16px.keras, checkpoints/best-32px.keras, " \
           f"checkpoints/best-64px.keras and {len(before) - 3} more files but no state.json, " \
           "so a new run here would overwrite them; rebuild it" in line
    line = one_line_error(run_cli("train", "--run-dir", run, "--resume"))
    assert "there is nothing to resume from" in line and "without --resume" not in line
    rebuild, resume = suggestions(line)
    assert rebuild == ["train", "--run-dir", str(run), "--rebuild-state"]
    assert snapshot(run) == before and not (run / "state.json").exists()

    res = run_cli(*rebuild)
    assert res.exit_code == 0, res.output
    assert f"rebuilt   {run / 'state.json'}: 3 of 3 epochs done (phase 3, step" in res.output
    rebuilt = json.loads((run / "state.json").read_text())
    for key in ("status", "phase", "epochs_done", "phase_epochs_done", "step", "planned_epochs",
                "class_ids", "best_epoch", "reports"):
        assert rebuilt[key] == whole[key], key
    # accuracies come back as history.csv holds them (6 significant digits)
    assert rebuilt["best_val_accuracy"] == pytest.approx(whole["best_val_accuracy"], rel=1e-5)
    for size, best in whole["best_by_size"].items():
        again = rebuilt["best_by_size"][size]
        assert (again["epoch"], again["stage"]) == (best["epoch"], best["stage"])
        assert again["val_accuracy"] == pytest.approx(best["val_accuracy"], rel=1e-5)
    res = run_cli(*resume)
    assert res.exit_code == 0 and "already done (3 of 3 epochs)" in res.output, res.output
    assert snapshot(run) == before


@pytest.mark.slow
@pytest.mark.backend
def test_a_rebuilt_state_resumes_a_run_killed_mid_way(run_copy):
    """state.json lost from a run killed in phase 3 after last.keras was saved but before its
    history row (the checkpoint one epoch ahead): the rebuilt state counts the history's 2
    epochs, the resume trains phase 3 again from phase 2's last step, and phases 1-2 stay as
    they were."""
    run = RunDir(run_copy)
    whole = run.read_state()
    run.truncate_history(2)
    shutil.rmtree(run.report_dir("phase-3"))
    run.state_path.unlink()
    kept = {p: v for p, v in snapshot(run_copy).items()
            if p.parent.name in ("phase-1", "phase-2") or
            p.name in ("best-16px.keras", "best-32px.keras")}
    res = run_cli("train", "--run-dir", run_copy, "--rebuild-state")
    assert res.exit_code == 0, res.output
    state = run.read_state()
    assert (state.status, state.epochs_done, state.phase, state.step,
            state.reports) == ("running", 2, 2, whole.step * 2 // 3, ["phase-1", "phase-2"])
    res = run_cli("train", "--run-dir", run_copy, "--resume", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "phase 3 (64 px, none): epoch 1 of phase 3/3, run epoch 3 of 3" in res.output
    assert f"epochs    3/3  (step {whole.step})" in res.output
    assert [r["stage"] for r in run.read_history()] == ["phase-1", "phase-2", "phase-3"]
    assert run.report_file("phase-3", "report.json").is_file()
    assert kept and {p: snapshot(run_copy)[p] for p in kept} == kept


@pytest.mark.slow
def test_a_damaged_state_gets_the_fix_that_fits_the_run(run_copy):
    run = run_copy
    (run / "state.json").write_text('{"status": "runn')
    before = snapshot(run)
    line = one_line_error(run_cli("train", "--run-dir", run, "--resume"))
    assert f"{run / 'state.json'}: not valid JSON" in line and "round" not in line
    rebuild, _ = suggestions(line)
    res = run_cli(*rebuild)
    assert res.exit_code == 0, res.output
    assert (run / "state-damaged.json").read_text() == '{"status": "runn'     # kept
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 3
    assert snapshot(run) == before
    # a run with rounds is sent to its latest round's start snapshot, never rebuilt
    for n in (1, 2):
        snap = run / "checkpoints" / f"round-{n}-start"
        snap.mkdir()
        (snap / "state.json").write_text("{}")
    (run / "state.json").write_text("[]")
    line = one_line_error(run_cli("train", "--run-dir", run, "--resume"))
    assert line.endswith(f"restore it from the latest round's start snapshot: copy "
                         f"{run / 'checkpoints' / 'round-2-start' / 'state.json'} over it")


def test_an_empty_folder_to_resume_says_how_to_start(tmp_path):
    line = one_line_error(run_cli("train", "--run-dir", tmp_path / "new", "--resume"))
    assert "nothing to resume (no state.json, no checkpoints, reports or history)" in line
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- same run on resume

def _edited_config(config, out, model=None, phases=None):
    """``config`` (a YAML file) with ``model`` keys and ``phases`` ({index: keys}) changed,
    written to ``out``; returns ``out``."""
    raw = yaml.safe_load(config.read_text())
    raw["model"].update(model or {})
    for i, keys in (phases or {}).items():
        raw["phases"][i].update(keys)
    out.write_text(yaml.safe_dump(raw))
    return out


@pytest.mark.slow
def test_resume_refuses_another_config_or_dataset_and_lists_what_differs(run_copy, run_config,
                                                                         tmp_path):
    from augmine.data.synth import write_synthetic_dataset

    run = run_copy
    before = snapshot(run)
    other = _edited_config(run_config, tmp_path / "other.yaml", model={"width": 8},
                           phases={0: {"epochs": 3}})
    line = one_line_error(run_cli("train", other, "--run-dir", run, "--resume"))
    assert f"{other} given to --resume {run} differs from the run's config.yaml in " \
           "model.width: 16 -> 8; phases[1].epochs: 1 -> 3;" in line
    assert "only the last phase's epochs may change" in line
    data = tmp_path / "four"
    write_synthetic_dataset(data, num_classes=4, train_per_class=4, val_per_class=2, seed=1)
    line = one_line_error(run_cli("train", "--run-dir", run, "--resume", "--data", data))
    assert f"--data {data}: the run {run} trained on " in line
    line = one_line_error(run_cli("train", "--run-dir", run, "--resume", "--epochs", "1",
                                  "--data", data))
    assert f"--data {data}: the run {run} trained on " in line
    assert snapshot(run) == before


@pytest.mark.slow
@pytest.mark.backend
def test_more_last_phase_epochs_on_resume_are_applied_and_printed(run_copy, run_config,
                                                                  tmp_path):
    run = run_copy
    before = snapshot(run)
    longer = _edited_config(run_config, tmp_path / "longer.yaml", phases={-1: {"epochs": 2}})
    res = run_cli("train", longer, "--run-dir", run, "--resume", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "resume: phases[3].epochs: 1 -> 2 (run epochs 3 -> 4); config.yaml records it" \
        in res.output
    assert "phase 3 (64 px, none): epoch 2 of phase 3/3, run epoch 4 of 4" in res.output
    assert "epochs    4/4" in res.output
    assert [int(r["epoch"]) for r in RunDir(run).read_history()] == [1, 2, 3, 4]
    assert RunDir(run).config.phases[-1].epochs == 2
    after = snapshot(run)
    kept = [p for p in before if "phase-3" not in p.parts and p.name not in
            ("history.csv", "last.keras", "best.keras", "best-64px.keras")]
    assert kept and all(after[p] == before[p] for p in kept)      # phases 1-2 untouched
    # fewer epochs than the phase has done are refused
    line = one_line_error(run_cli("train", "--run-dir", run, "--resume", "--epochs", "1"))
    assert "phase 3 has already trained 2 epochs, more than the 1 asked; give at least 2" in line


# --------------------------------------------------------------------------- checks before writes

def test_an_override_of_an_unknown_class_is_refused_before_anything_is_written(tmp_path,
                                                                               synth_root):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "r", "transforms": [{"transform": "HorizontalFlip", "p": 0.5}],
        "classes": {"striped red circel": {"strength": 0.3}}}))
    config = write_config(tmp_path, phases=[{"size": 16, "epochs": 1, "recipe": str(recipe)}])
    line = one_line_error(run_cli("train", config, "--data", synth_root, "--run-dir",
                                  tmp_path / "run"))
    assert "classes: unknown class 'striped red circel'; did you mean 'striped red circle'" \
        in line
    assert not (tmp_path / "run").exists()
    for command in (["validate", recipe, "--data", synth_root],
                    ["preview", recipe, "--data", synth_root, "-o", tmp_path / "p.png"]):
        line = one_line_error(run_cli("recipe", *command))
        assert f"{recipe}: classes: unknown class 'striped red circel'; did you mean " \
               "'striped red circle'" in line
    assert not (tmp_path / "p.png").exists()
    res = run_cli("recipe", "validate", recipe)          # without --data: no classes to match
    assert res.exit_code == 0, res.output


def test_strength_out_of_range_is_one_line(tmp_path, synth_root):
    config = write_config(tmp_path, phases=[{"size": 16, "epochs": 1, "recipe": "light",
                                             "strength": 40}])
    line = one_line_error(run_cli("train", config, "--data", synth_root, "--run-dir",
                                  tmp_path / "run"))
    assert line == (f"Error: {config}: phases[1].strength: 40 is out of range; use a number "
                    "from 0 (no augmentation) to 10 (1 = the recipe as written)")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.backend
def test_a_start_that_failed_before_its_first_epoch_starts_afresh_with_epochs(tmp_path,
                                                                              synth_root):
    """A start killed before its first epoch left state.json (0 epochs) and config.yaml:
    the rerun starts afresh, ``--epochs`` sets the last phase's epochs and the header says
    ``epoch``/``epochs`` as it should."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.json").write_text(json.dumps({"status": "running", "epochs_done": 0}))
    res = run_cli("train", write_config(tmp_path, phases=ONE_PHASE), "--data", synth_root,
                  "--run-dir", run, "--epochs", "2", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "phase 1 (16 px, none): epochs 1..2 of phase 1/1, run epochs 1..2 of 2" in res.output
    assert "epochs    2/2" in res.output
    assert RunDir(run).config.phases[0].epochs == 2


# --------------------------------------------------------------------------- damaged checkpoint

@pytest.mark.slow
def test_a_truncated_checkpoint_says_so_and_names_the_others(run_copy):
    last = run_copy / "checkpoints" / "last.keras"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    before = snapshot(run_copy)
    line = one_line_error(run_cli("evaluate", run_copy, "--checkpoint", "last"))
    assert f"{last}: the checkpoint is damaged or truncated (not a whole .keras archive" in line
    assert "use another checkpoint of the run (best-16px.keras, best-32px.keras, " \
           "best-64px.keras, best.keras in" in line
    assert "File not found" not in line
    assert snapshot(run_copy) == before
