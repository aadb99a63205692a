"""What rounds tell the user, honestly: "best" never chosen by the images that measure rounds,
a verdict that names every measurable loss, no measured zero from a mode that trains what
its control trains, plans that favour nothing refused, and the smaller texts (ETA, labelled
F1 losses, whole class names, a weak model's suspects)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from support import copy_run

from augmine.cli import cli
from augmine.rounds.arms import MODE_TABLE, MODES

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def files_of(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file()}


def one_line_error(res) -> str:
    assert res.exit_code == 1, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


# --------------------------------------------------------------------------- best

@pytest.mark.slow
def test_a_round_never_moves_best_and_says_its_model_is_current(mining_run, tmp_path):
    """Every epoch of the round scores above the recorded best (its record is lowered to 0
    first), yet best.keras, best-16px.keras and the state's best entries stay as the round
    found them; last.keras is the round's model and one line says so; the round prints its
    ETA per arm; evaluate, affinity and tailor name the checkpoint they use."""
    run = copy_run(mining_run, tmp_path)
    state = json.loads((run / "state.json").read_text())
    state["best_val_accuracy"] = 0.0
    state["best_by_size"]["16"]["val_accuracy"] = 0.0
    (run / "state.json").write_text(json.dumps(state))
    ckpt = run / "checkpoints"
    before = {n: (ckpt / n).read_bytes() for n in ("best.keras", "best-16px.keras", "last.keras")}
    res = run_cli("mine", "round", run, "--epochs", "1", "--no-progress")
    assert res.exit_code == 0, res.output
    for name in ("best.keras", "best-16px.keras"):
        assert (ckpt / name).read_bytes() == before[name], name
    assert (ckpt / "last.keras").read_bytes() != before["last.keras"]
    after = json.loads((run / "state.json").read_text())
    assert after["best_val_accuracy"] == 0.0 and after["best_by_size"] == state["best_by_size"]
    assert after["best_epoch"] == state["best_epoch"] and after["step"] > state["step"]
    line = [x for x in res.output.splitlines() if "current model" in x]
    last = ckpt.resolve() / "last.keras"
    # the keep rule decides which model the run goes on from (rounds/keep.py); the line says it
    goes_on = json.loads((run / "reports" / "round-1" / "report.json").read_text())[
        "meta"]["rule"]["goes_on_from"]
    head = ("round 1's model is now the run's current model" if goes_on == "round" else
            f"the rule rejected round 1: the run goes on from the {goes_on}'s model, now the "
            "run's current model")
    assert line == [f"{head}, {last} (the next round continues from it); the best checkpoints "
                    "stay the phases' (rounds never move them): "
                    f"`augmine evaluate {run.resolve()} --checkpoint last` scores it"]
    # progress: the arm, its stage and the whole round's ETA after every epoch
    assert re.search(r"^round-1: 1/2 epochs, \S+ elapsed, ETA \S+$", res.output, re.M), res.output
    assert re.search(r"^round-1 control: 2/2 epochs, \S+ elapsed, ETA \S+$", res.output, re.M)
    # the checkpoint each command measures, by its path
    res = run_cli("evaluate", run)
    assert res.exit_code == 0 and f"checkpoint  {ckpt.resolve() / 'best-16px.keras'}" in res.output
    res = run_cli("evaluate", run, "--checkpoint", "last")
    assert res.exit_code == 0 and f"checkpoint  {ckpt.resolve() / 'last.keras'}" in res.output
    res = run_cli("recipe", "affinity", "light", "--run", run, "--draws", "1", "--no-progress")
    assert res.exit_code == 0, res.output
    assert f"checkpoint {ckpt.resolve() / 'best-16px.keras'} at 16 px" in res.output
    res = run_cli("recipe", "tailor", "light", "--run", run, "--draws", "1", "--no-progress",
                  "-o", tmp_path / "tailored.yaml")
    assert res.exit_code == 0, res.output
    assert f"affinity of checkpoint {ckpt.resolve() / 'best-16px.keras'} at 16 px" in res.output


# --------------------------------------------------------------------------- verdicts

def _verdict_names(line: str) -> list[str]:
    return [m for m in ("top-1", "macro F1", "chosen F1", "partner F1", "other F1")
            if f"{m} " in line]


@pytest.mark.slow
def test_the_verdict_names_every_row_below_zero(mining_run, tmp_path):
    """One class oversampled x40 at a high learning rate wrecks the others against the
    control (top-1 -16.0 pt [-28.0, -4.0], other F1 -0.173 [-0.240, -0.082] on the CPU):
    every row whose interval net of control lies below zero is named in the WARNING line,
    the last line of the effect; the classes that lost most show both numbers labelled."""
    run = copy_run(mining_run, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["mining"].update({"k": 1, "factor": 40, "min_lr": 0.01, "max_lr": 0.03})
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = run_cli("mine", "round", run, "--epochs", "1", "--no-progress")
    assert res.exit_code == 0, res.output
    report = json.loads((run / "reports" / "round-1" / "report.json").read_text())
    table = report["effect"]["table"]
    lost = [m for m, row in table.items() if row["effect"]["hi"] < 0]
    assert lost, table                                  # the wreck is measurable
    lines = res.output.splitlines()
    warn = [x for x in lines if x.startswith("WARNING")]
    assert len(warn) == 1 and sorted(_verdict_names(warn[0])) == sorted(lost)
    # the verdict closes the effect; the keep rule follows and rejects the wreck
    rule = lines[lines.index(warn[0]) + 1]
    assert re.match(r"rule on the \d+ selection images \(", rule) and "rejected: " in rule, rule
    after = lines[lines.index(warn[0]) + 2:]
    assert after[0].startswith("what the run ends up with against the control"), after
    assert after[1].startswith("the rule rejected round 1: the run goes on from the "), after
    fell = lines[lines.index("F1 fell most (against the control):") + 1]
    assert re.search(r"control \d\.\d{3}, round \d\.\d{3} \([-+]\d\.\d{3}\) \[\d+\]$", fell), fell


@pytest.mark.slow
def test_compare_skips_a_mode_that_trains_the_control(mining_run, tmp_path):
    """mining_run's only phase has no augmentation: `gentle` (milder augmentation for the
    chosen classes) would train exactly the control, so `mine compare` skips it with the
    reason, trains no branch for it and measures the others."""
    run = copy_run(mining_run, tmp_path)
    res = run_cli("mine", "compare", run, "--mode", "gentle", "--mode", "oversample",
                  "--epochs", "1", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "compare: skipping mode gentle (gentle: milder augmentation for them " \
           "(affinity-tailored, plain sampling)) would train exactly what the control trains" \
           in res.output
    assert re.search(r"^gentle +skipped: it would train exactly what the control trains",
                     res.output, re.M)
    assert re.search(r"^oversample +[-+]\d", res.output, re.M)
    group = next((run / "branches").iterdir())
    assert sorted(p.name for p in group.iterdir()) == ["control", "oversample"]
    assert "+0.000 [+0.000, +0.000]" not in res.output
    assert re.search(r"^compare control: 2/2 epochs, \S+ elapsed, ETA", res.output, re.M)


def test_a_round_that_would_train_the_control_is_refused(trained_run, tmp_path):
    """`mine round --mode gentle` on a run without augmentation, and an oversample round
    whose plan gives factor 1: refused in one line before anything is written."""
    run = copy_run(trained_run.run_dir, tmp_path)
    files = files_of(run)
    line = one_line_error(run_cli("mine", "round", run, "--mode", "gentle", "--epochs", "1"))
    assert "would train exactly what the control trains" in line
    assert "measured zero, not a result" in line and "--mode oversample" in line
    assert files_of(run) == files
    res = run_cli("mine", "plan", run, "--factor", "1")
    assert res.exit_code == 0, res.output
    files = files_of(run)
    line = one_line_error(run_cli("mine", "round", run, "--epochs", "1"))
    assert "mode oversample (plain epochs (factor 1: no extra samples)) would train exactly " \
           "what the control trains" in line and "--factor 3" in line
    assert files_of(run) == files


def test_a_plan_choosing_every_class_is_refused(trained_run, tmp_path):
    """`mine plan --k 50` on 10 classes, one factor: refused (it favours nothing), no plan
    written; with proportional factors it is written with a one-line warning."""
    run = copy_run(trained_run.run_dir, tmp_path)
    line = one_line_error(run_cli("mine", "plan", run, "--k", "50"))
    assert "chooses all 10 classes" in line and "favours nothing" in line and "--k 2" in line
    assert not (run / "plans").exists()
    res = run_cli("mine", "plan", run, "--k", "50", "--cap", "3")
    assert res.exit_code == 0, res.output
    warn = [x for x in res.output.splitlines() if x.startswith("warning")]
    assert len(warn) == 1 and "chooses every class (10 of 10)" in warn[0]
    assert (run / "plans" / "round-1.json").is_file()


# --------------------------------------------------------------------------- help and docs

def test_mode_help_names_each_mode_and_the_docs_offer_only_what_round_takes():
    res = run_cli("mine", "round", "--help")
    text = " ".join(res.output.split())
    for mode in MODES:
        assert f"{mode} = " in text, mode
    assert "gentle = milder augmentation for them" in text
    res = run_cli("mine", "compare", "--help")
    assert "recipe = a stronger recipe for them" in " ".join(res.output.split())
    assert not MODE_TABLE["recipe"].in_round
    for doc in ("mining.md", "recipes.md"):
        text = (REPO / "docs" / doc).read_text()
        assert not re.search(r"mine round[^`\n]*--mode recipe", text), doc
        assert "`--mode recipe`" not in text, doc
    res = run_cli("mine", "round", "RUN", "--mode", "recipe")
    assert res.exit_code == 2 and "'recipe' is not one of" in res.output


# --------------------------------------------------------------------------- history, suspects

def test_history_shows_whole_class_names(tmp_path, synth_root, synth_index):
    from augmine.analysis.reports import write_stage_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(
        {"name": "h", "data": str(synth_root), "batch_size": 32, "phases": [{"size": 16, "epochs": 1}]}))
    y = np.asarray(synth_index.val.labels)
    probs = np.eye(synth_index.num_classes)[y]
    write_stage_report(run, "phase-1", y, probs, synth_index.class_ids,
                       synth_index.class_names, meta={"kind": "phase", "size": 16})
    longest = max(synth_index.class_names, key=len)
    res = run_cli("mine", "history", run, "--class", longest, "--class",
                  synth_index.class_names[0])
    assert res.exit_code == 0, res.output
    head, row = res.output.splitlines()[:2]
    assert len(longest) > 14 and longest in head
    assert len(head) == len(row) and row.endswith("1.000")


def test_weak_model_note_threshold():
    from augmine.rounds.suspects import WEAK_MODEL_CHANCE_MULTIPLE, weak_model_note

    assert WEAK_MODEL_CHANCE_MULTIPLE == 2.0
    note = weak_model_note(0.12, 10, "val")
    assert note.startswith("note: the model's top-1 on these val images is 12.0% (chance 10.0%)")
    assert weak_model_note(0.2, 10, "val") is None and weak_model_note(0.6, 4, "holdout") is None
    assert weak_model_note(0.49, 4, "holdout") is not None


def test_suspects_say_when_the_model_is_too_weak(trained_run, tmp_path, monkeypatch):
    """The note appears exactly when top-1 on the scored images is under the threshold
    (set here below the trained run's accuracy, then past it; the default threshold:
    test_weak_model_note_threshold)."""
    import augmine.rounds.suspects as suspects

    run = copy_run(trained_run.run_dir, tmp_path)
    monkeypatch.setattr(suspects, "WEAK_MODEL_CHANCE_MULTIPLE", 1.0)    # chance: 10%
    res = run_cli("mine", "suspects", run, "--per-class", "1")
    assert res.exit_code == 0 and "too weak" not in res.output, res.output
    monkeypatch.setattr(suspects, "WEAK_MODEL_CHANCE_MULTIPLE", 10.0)   # chance x 10 = 100%
    res = run_cli("mine", "suspects", run, "--per-class", "1")
    assert res.exit_code == 0, res.output
    assert "too weak for its confidence to single out label errors" in res.output


@pytest.mark.slow
def test_the_demo_says_the_rounds_model_is_current(demo_run):
    out = demo_run.result.output
    assert demo_run.result.exit_code == 0, out
    last = demo_run.out.resolve() / "checkpoints" / "last.keras"
    assert f"  round 1's model is now the run's current model, {last} (the next round" in out
