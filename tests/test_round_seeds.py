"""Rounds over training seeds (``--seeds``), the rule that keeps a round only when it helps
on the selection images, and ``mine auto``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from support import copy_run

from augmine.cli import cli


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def noisy_probs(y, num, wrong, rng):
    """One-hot probabilities right on all but ``wrong`` randomly chosen images."""
    pred = np.asarray(y).copy()
    miss = rng.choice(len(y), wrong, replace=False)
    pred[miss] = (pred[miss] + 1) % num
    return np.eye(num, dtype=np.float32)[pred]


def test_effect_over_seeds_is_the_two_stage_bootstrap(synth_index):
    """With two seeds each "net of control" cell is seed_effect's over the seeds and the
    measurement images (not seed 1's alone), and the printout shows the seed-to-seed range."""
    from augmine.analysis.effects import seed_effect
    from augmine.analysis.effects import round_metrics
    from augmine.analysis.plans import selection_split
    from augmine.rounds.runner import seeds_effect
    from augmine.rounds.text import format_effect

    y = np.asarray(synth_index.val.labels)
    num, rng = synth_index.num_classes, np.random.default_rng(0)
    before = noisy_probs(y, num, 30, rng)
    after = [noisy_probs(y, num, 10, rng), noisy_probs(y, num, 40, rng)]   # seeds disagree
    control = [noisy_probs(y, num, 20, rng), noisy_probs(y, num, 20, rng)]
    eff = seeds_effect(synth_index, "val-half", 0, [0, 1], before, after, control, reps=200)
    meas = selection_split(y, 0)[1]
    samples = [(y[meas], a[meas].argmax(1), c[meas].argmax(1)) for a, c in zip(after, control)]
    want = seed_effect(samples, lambda t, a, c: round_metrics(t, a, num, [0, 1])
                       - round_metrics(t, c, num, [0, 1]), reps=200, seed=0)
    cell = eff["table"]["top-1"]["effect"]
    assert eff["seeds"] == 2 and cell["per_seed"] == pytest.approx(want["per_seed"][:, 2])
    assert (cell["value"], cell["lo"], cell["hi"]) == pytest.approx(
        (want["value"][2], want["lo"][2], want["hi"][2]))
    one = seeds_effect(synth_index, "val-half", 0, [0, 1], before, after[:1], control[:1],
                       reps=200)
    assert cell["value"] != one["table"]["top-1"]["effect"]["value"]
    text = "\n".join(format_effect(eff))
    lo, hi = sorted(want["per_seed"][:, 2] * 100)
    assert f"top-1 {lo:+.1f} to {hi:+.1f} pt" in text
    assert f"{cell['value'] * 100:+.1f} [{cell['lo'] * 100:+.1f}, {cell['hi'] * 100:+.1f}]" in text
    assert "mean over 2 training seeds" in text


def _weights(path):
    from augmine.runs.factories import load_checkpoint

    return [np.asarray(w) for w in load_checkpoint(path, compile=False).get_weights()]


def assert_same_weights(path, other):
    assert all(np.array_equal(a, b) for a, b in zip(_weights(path), _weights(other)))


def model_step(path) -> int:
    from augmine.runs.factories import load_checkpoint

    return int(np.asarray(load_checkpoint(path).optimizer.iterations))


@pytest.mark.slow
@pytest.mark.backend
def test_compare_over_two_seeds_differs_by_seed_and_repeats_a_seed(mining_run, tmp_path):
    """``mine compare --seeds 2``: seed 2 of each arm trains in its own branch and differs
    from seed 1; training seed 2 again (its branch deleted, as after a kill before it began)
    gives the same weights, leaves seed 1 alone and prints the same table. One progress
    line with the ETA after every epoch counts all 4 arms, seed arms included, and the
    epochs the branches already hold."""
    run = copy_run(mining_run, tmp_path)
    args = ("mine", "compare", run, "--mode", "oversample", "--epochs", "1", "--seeds", "2",
            "--no-progress")
    res = run_cli(*args)
    assert res.exit_code == 0, res.output
    progress = re.findall(r"^(compare [\w -]+): (\d)/(\d) epochs, \S+ elapsed, ETA", res.output,
                          re.M)
    assert progress == [("compare oversample", "1", "4"), ("compare control", "2", "4"),
                        ("compare oversample seed 2", "3", "4"),
                        ("compare control seed 2", "4", "4")], res.output
    group = next((run / "branches").iterdir())
    assert sorted(p.name for p in group.iterdir()) == [
        "control", "control-seed-2", "oversample", "oversample-seed-2"]
    assert "oversample: seed-to-seed range of the net effect: chosen F1" in res.output
    assert "mean over 2 training seeds" in res.output
    one, two = (_weights(group / b / "checkpoints" / "last.keras")
                for b in ("oversample", "oversample-seed-2"))
    assert any(not np.array_equal(a, b) for a, b in zip(one, two))
    seed1 = (group / "oversample" / "checkpoints" / "last.keras").stat().st_mtime_ns
    (group / "oversample-seed-2").rename(tmp_path / "first-seed-2")
    again = run_cli(*args)
    assert again.exit_code == 0, again.output
    assert re.search(r"^compare oversample seed 2: 4/4 epochs, \S+ elapsed, ETA", again.output,
                     re.M), again.output
    repeat = _weights(group / "oversample-seed-2" / "checkpoints" / "last.keras")
    assert all(np.array_equal(a, b) for a, b in zip(two, repeat))
    assert (group / "oversample" / "checkpoints" / "last.keras").stat().st_mtime_ns == seed1
    table = lambda out: out.split("effect net of control")[1]  # noqa: E731
    assert table(again.output) == table(res.output)


# --------------------------------------------------------------------------- the keep rule

def planted(harm: bool):
    """Selection labels of 4 classes (chosen: 0 and 1) and predictions of a start, a
    control and a round: the helpful round fixes class 0's images and keeps the rest; the
    harmful one fixes them but breaks twice as many images of classes 2 and 3."""
    y = np.repeat(np.arange(4), 50)
    start = y.copy()
    start[:20] = 1                                     # class 0 half-confused with class 1
    start[150:155] = 0                                 # a few mistakes elsewhere
    control = start.copy()
    control[150:155] = 3                               # the control: other mistakes, same count
    rnd = start.copy()
    rnd[:20] = 0                                       # the round learns class 0 ...
    if harm:
        rnd[100:140] = 0                               # ... and wrecks class 2 on the way
    return y, start, rnd, control


def test_rule_keeps_a_helpful_round_and_rejects_a_harmful_one():
    from augmine.rounds.runner import keep_decision

    y, start, rnd, control = planted(harm=False)
    kept = keep_decision(y, start, rnd, control, num_classes=4, chosen=[0, 1], tolerance=0.5)
    assert kept["kept"] and kept["goes_on_from"] == "round"
    assert kept["scores"]["round"]["chosen F1"] > kept["scores"]["control"]["chosen F1"]
    y, start, rnd, control = planted(harm=True)
    out = keep_decision(y, start, rnd, control, num_classes=4, chosen=[0, 1], tolerance=0.5)
    assert not out["kept"] and out["goes_on_from"] == "control"    # tie on top-1: the control
    assert "top-1" in out["reason"] and "0.5 pt below the control's" in out["reason"]
    # a generous tolerance lets the same round through; no chosen-F1 gain never does
    assert keep_decision(y, start, rnd, control, num_classes=4, chosen=[0, 1],
                         tolerance=25)["kept"]
    same = keep_decision(y, start, start, None, num_classes=4, chosen=[0, 1], tolerance=25)
    assert not same["kept"] and same["goes_on_from"] == "start"
    assert "not above the start's" in same["reason"]


@pytest.mark.slow
@pytest.mark.backend
def test_rejected_round_leaves_the_run_on_the_better_model_and_says_so(mining_run, tmp_path):
    """A round with a huge learning rate wrecks the model (its control too): the rule
    rejects it on the selection images, the run's last.keras is the start's again (step and
    epochs too), the report records the decision and the output says which model the run
    goes on from; killed before its report, the round resumes to the same decision."""
    import yaml

    run = copy_run(mining_run, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["mining"].update({"min_lr": 0.5, "max_lr": 5.0})
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    start_state = json.loads((run / "state.json").read_text())
    res = run_cli("mine", "round", run, "--epochs", "1", "--no-progress")
    assert res.exit_code == 0, res.output
    rule = json.loads((run / "reports" / "round-1" / "report.json").read_text())["meta"]["rule"]
    assert not rule["kept"] and rule["goes_on_from"] == "start"
    assert "rejected:" in res.output and "the run goes on from the start's model" in res.output
    snap = run / "checkpoints" / "round-1-start" / "last.keras"
    assert_same_weights(run / "checkpoints" / "last.keras", snap)
    state = json.loads((run / "state.json").read_text())       # the schedule goes on
    assert state["epochs_done"] == start_state["epochs_done"] + 1
    assert model_step(run / "checkpoints" / "last.keras") == state["step"] > start_state["step"]
    line = next(x for x in res.output.splitlines() if x.startswith("what the run ends up"))
    assert "against the control on the measurement images: chosen F1" in line
    # killed after the decision, before the report: the same decision and numbers again
    import shutil

    shutil.rmtree(run / "reports" / "round-1")
    again = run_cli("mine", "round", run, "--no-progress")
    assert again.exit_code == 0, again.output
    assert "resumed after an interruption" in again.output
    after = lambda out: out.split("chosen on ")[1]  # noqa: E731
    assert after(again.output) == after(res.output)
    assert_same_weights(run / "checkpoints" / "last.keras", snap)


# --------------------------------------------------------------------------- mine auto

@pytest.mark.slow
@pytest.mark.backend
def test_mine_auto_keeps_a_mode_or_none_and_resumes(mining_run, tmp_path):
    """``mine auto`` with two modes and 1 epoch: every mode is judged on the selection
    images, the run goes on from the kept mode's model (or the better of control and
    start) and says so, the round-1 report holds what the user got; killed before its
    report, it resumes without training again and prints the same."""
    import shutil

    run = copy_run(mining_run, tmp_path)
    args = ("mine", "auto", run, "--modes", "oversample,class-weight", "--epochs", "1",
            "--no-progress")
    res = run_cli(*args)
    assert res.exit_code == 0, res.output
    assert "auto: stage 1/2, training mode oversample (1/3)" in res.output
    assert "ETA" in res.output and "auto: stage 2/2, the keep rule" in res.output
    for mode in ("oversample", "class-weight"):
        assert f"  {mode}: rule on the " in res.output
    rep = json.loads((run / "reports" / "round-1" / "report.json").read_text())
    meta = rep["meta"]
    goes_on = meta["goes_on_from"]
    assert meta["auto"] and set(meta["decisions"]) == {"oversample", "class-weight"}
    mode = "" if goes_on in ("start", "control") else " mode"
    assert f"the run goes on from the {goes_on}{mode}'s model" in res.output
    assert (meta["mode"] == goes_on) == (goes_on not in ("start", "control"))
    group = next((run / "branches").iterdir())
    source = (run / "checkpoints" / "round-1-start" / "last.keras" if goes_on == "start"
              else group / goes_on / "checkpoints" / "last.keras")
    assert_same_weights(run / "checkpoints" / "last.keras", source)
    assert "what the run ends up with, on the measurement images" in res.output
    assert rep["effect"]["table"]["top-1"]["effect"] is not None
    stamps = {p: p.stat().st_mtime_ns for p in group.glob("*/checkpoints/last.keras")}
    shutil.rmtree(run / "reports" / "round-1")          # killed before the report was written
    again = run_cli(*args)
    assert again.exit_code == 0, again.output
    assert "auto: resuming round 1" in again.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    tail = lambda out: out.split("auto: stage 2/2")[1]  # noqa: E731
    assert tail(again.output) == tail(res.output)


# --------------------------------------------------------------------------- default emphasis

def test_default_emphasis_fits_the_class_count():
    """Without k and factor a tenth of the classes is chosen and their share of an epoch
    grows by at most 10 points, at 20 classes as at 200 (x3 on 4 of 20 would double it)."""
    from augmine.analysis.plans import bounded_factor, default_k

    assert (default_k(20), default_k(200), default_k(6)) == (2, 20, 1)
    for classes in (20, 200):
        counts = np.full(classes, 50)
        weak = list(range(default_k(classes)))
        f = bounded_factor(counts, weak)
        share = f * counts[weak].sum() / (f * counts[weak].sum() + counts[len(weak):].sum())
        assert f == pytest.approx(2.25) and share == pytest.approx(0.2)
    assert bounded_factor(np.full(20, 50), [0, 1, 2, 3]) == pytest.approx(0.3 * 0.8 / 0.14)
    assert bounded_factor(np.full(20, 50), range(19)) == 3.0     # capped at x3
    assert bounded_factor(np.array([5, 500]), [0]) == 3.0        # a rare class: at most x3


def test_mine_plan_without_k_and_factor_uses_the_fitted_defaults(synth_root, synth_index,
                                                                  tmp_path):
    import yaml

    from augmine.analysis.reports import write_stage_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(
        {"name": "fit", "data": str(synth_root), "batch_size": 32,
         "phases": [{"size": 16, "epochs": 1, "recipe": "none"}]}))
    y = np.asarray(synth_index.val.labels)
    probs = noisy_probs(y, synth_index.num_classes, 30, np.random.default_rng(1))
    write_stage_report(run, "phase-1", y, probs, synth_index.class_ids,
                       synth_index.class_names, meta={"kind": "phase", "size": 16})
    res = run_cli("mine", "plan", run)
    assert res.exit_code == 0, res.output
    assert "1 of 10 classes chosen: 10.0% of an epoch before, 20.0% after" in res.output
    plan = json.loads((run / "plans" / "round-1.json").read_text())
    assert plan["policy"]["k"] == 1 and plan["policy"]["factor"] == pytest.approx(2.25)
