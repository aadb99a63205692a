"""Mining rounds and the ``augmine mine`` commands.

Fast tests use a run folder fabricated with ``write_stage_report`` (no training); the slow
ones train a tiny DenseNet on the generated dataset and run real rounds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from support import MINING, TINY, copy_run, read_only, tiny_config

from augmine.cli import cli
from augmine.data.dataset import load_index
from augmine.analysis.plans import OversamplingPlan, make_plan
from augmine.analysis.reports import list_stage_reports, load_stage_report, write_stage_report
from augmine.runs.rundir import REPORT_FILES, RunDir
from augmine.data.synth import confusable_pairs


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def fabricated_predictions(index, pair, rate=0.5, seed=0):
    """Val probabilities where ``rate`` of each class of ``pair`` is predicted as the other."""
    rng = np.random.default_rng(seed)
    y_true = np.asarray(index.val.labels)
    y_pred = y_true.copy()
    a, b = (index.class_index(n) for n in pair)
    for src, dst in ((a, b), (b, a)):
        idx = np.flatnonzero(y_true == src)
        y_pred[rng.choice(idx, int(len(idx) * rate), replace=False)] = dst
    probs = np.full((len(y_true), index.num_classes), 0.02, np.float32)
    probs[np.arange(len(y_true)), y_pred] = 1 - 0.02 * (index.num_classes - 1)
    return y_true, probs


@pytest.fixture
def fake_run(tmp_path, synth_root, synth_index):
    """A run folder with config.yaml and a phase-1 report in which the planted pair is confused."""
    run = tmp_path / "run"
    run.mkdir()
    cfg = {"name": "fake", "data": str(synth_root), "batch_size": 32,
           "phases": [{"size": 16, "epochs": 1, "recipe": "none"}],
           "mining": {"policy": "bottom-k", "k": 2, "factor": 3, "epochs": 1}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    pair = confusable_pairs(synth_root)[0]
    y_true, probs = fabricated_predictions(synth_index, pair)
    write_stage_report(run, "phase-1", y_true, probs, synth_index.class_ids,
                       synth_index.class_names, meta={"kind": "phase", "size": 16})
    return run


def test_analyze_prints_table_and_planted_pair(fake_run, synth_root):
    a, b = confusable_pairs(synth_root)[0]
    res = run_cli("mine", "analyze", fake_run)
    assert res.exit_code == 0, res.output
    assert "phase-1, 16 px: accuracy 90.0%" in res.output
    assert f"{a} -> {b}: 50% of {a} val images (5)" in res.output
    assert f"{a} <-> {b}: 10 confusions" in res.output
    # weakest first: the two pair classes (F1 0.5) lead the table
    table = res.output.split("support")[1].splitlines()[1:3]
    assert sorted(line.split("  ")[0].strip() for line in table) == sorted([a, b])
    # the stage's plots are drawn when asked for, and report.md shows them
    report = fake_run.resolve() / "reports" / "phase-1"
    assert res.output.rstrip().endswith(f"{report / 'report.md'} (plots: f1.png, confusion.png)")
    assert "![per-class F1](f1.png)" in (report / "report.md").read_text()
    assert (report / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_analyze_reads_a_read_only_run_and_says_the_plots_were_not_drawn(fake_run):
    with read_only(fake_run) as reason:
        res = run_cli("mine", "analyze", fake_run)
    assert res.exit_code == 0, res.output
    report = fake_run.resolve() / "reports" / "phase-1"
    assert res.output.rstrip().splitlines()[-1] == (
        f"report: {report / 'report.md'} (plots not drawn: {reason.capitalize()}: "
        f"{report / 'f1.png'})")
    assert not (report / "f1.png").exists()


def test_plan_writes_plan_and_prints_shares(fake_run, synth_root):
    a, b = confusable_pairs(synth_root)[0]
    res = run_cli("mine", "plan", fake_run, "--policy", "bottom-k", "--k", "2", "--factor", "3")
    assert res.exit_code == 0, res.output
    plan = OversamplingPlan.from_dict(json.loads((fake_run / "plans" / "round-1.json").read_text()))
    assert sorted(plan.weak_names) == sorted([a, b])
    assert sorted(plan.factors.tolist()) == [1.0] * 8 + [3.0, 3.0]
    # 10 classes x 40 images: a weak class goes from 10% to 3 * 40 / 560 = 21.4% of an epoch
    assert "10.00%" in res.output and "21.43%" in res.output
    assert "2 of 10 classes chosen: 20.0% of an epoch before, 42.9% after; epoch 400 -> 560" \
        in res.output
    # proportional factors: 4 * (1 - 0.5) = 2 for both pair classes
    res = run_cli("mine", "plan", fake_run, "--k", "2", "--factor", "4", "--cap", "5")
    assert res.exit_code == 0, res.output
    assert "proportional" in res.output and "2.00" in res.output


def test_plan_and_round_errors_are_one_line(fake_run, tmp_path):
    res = run_cli("mine", "plan", fake_run, "--policy", "threshold")
    assert res.exit_code != 0 and res.output.startswith("Error: ") and "--threshold" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    res = run_cli("mine", "round", fake_run)
    assert res.exit_code != 0 and "has no checkpoint" in res.output
    assert len(res.output.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    for cmd in ("analyze", "history", "plan"):
        res = run_cli("mine", cmd, empty)
        assert res.exit_code != 0 and "not a run folder" in res.output, res.output
    (empty / "config.yaml").write_text("name: x\n")
    res = run_cli("mine", "analyze", empty)
    assert "holds no stage report" in res.output


def test_round_rejects_plan_with_unknown_class(fake_run, synth_index):
    (fake_run / "checkpoints").mkdir()
    (fake_run / "checkpoints" / "last.keras").write_bytes(b"not used")
    plan = make_plan(np.linspace(0, 1, 10), list(synth_index.class_ids),
                     list(synth_index.class_names), k=1)
    d = plan.to_dict()
    d["class_ids"][0], d["class_names"][0] = "n99999999", "Chihuahua"
    (fake_run / "plans").mkdir()
    (fake_run / "plans" / "round-1.json").write_text(json.dumps(d))
    res = run_cli("mine", "round", fake_run, "--epochs", "1")
    assert res.exit_code != 0 and res.output.startswith("Error: ")
    assert "'Chihuahua' (n99999999) is not in the dataset" in res.output
    assert not (fake_run / "checkpoints" / "round-1-start").exists()   # nothing touched


def test_history_across_phases_and_rounds(fake_run, synth_root, synth_index):
    a, b = confusable_pairs(synth_root)[0]
    plan = make_plan(np.r_[0.5, 0.5, np.ones(8)], synth_index.class_ids,
                     synth_index.class_names, k=2)
    y_true, probs = fabricated_predictions(synth_index, (a, b), rate=0.2)
    write_stage_report(fake_run, "round-1", y_true, probs, synth_index.class_ids,
                       synth_index.class_names, plan=plan,
                       before=list_stage_reports(fake_run)[0])
    res = run_cli("mine", "history", fake_run)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert a[:14] in lines[0] and b[:14] in lines[0]
    assert lines[1].split()[:4] == ["phase-1", "16", "90.0%", "0.900"]
    assert lines[2].split()[:2] == ["round-1", "-"] and lines[2].split()[-1] == "0.800"
    res = run_cli("mine", "analyze", fake_run)       # latest = the round: before/after shown
    assert f"F1 {a[:27]}" in res.output and "(+0.300)" in res.output


@pytest.mark.backend
def test_plan_frequencies_over_a_pipeline_epoch(synth_index):
    """A plan's sampled class counts over one pipeline epoch match the plan: exactly
    floor(f) * n + round(frac(f) * n) per class (tolerance 0), every class present."""
    from augmine.feed.feeds import train_dataset
    from augmine.feed.sampling import epoch_length

    f1 = np.linspace(0.1, 1.0, synth_index.num_classes)
    plan = make_plan(f1, synth_index.class_ids, synth_index.class_names, k=3, factor=4.0,
                     cap=3.5)                     # proportional: 3.5, 3.2, 2.8
    assert plan.factors[:3] == pytest.approx([3.5, 3.2, 2.8])
    ds = train_dataset(synth_index, "none", size=16, batch_size=128, plan=plan, seed=1,
                       workers=0)
    labels = np.concatenate([np.asarray(y) for _, y in ds])
    counts = np.bincount(labels, minlength=synth_index.num_classes)
    n = synth_index.class_counts("train")
    expected = np.floor(plan.factors) * n + np.round((plan.factors % 1) * n)
    assert counts.tolist() == expected.astype(int).tolist()
    assert len(labels) == epoch_length(synth_index, plan)
    _, new_share = plan.expected_share(n)
    assert np.abs(counts / counts.sum() - new_share).max() < 0.005


# --------------------------------------------------------------------------- real rounds

def _round_rows(run):
    from augmine.runs.rundir import RunDir

    return [r for r in RunDir(run).read_history() if r["stage"] == "round-1"]


@pytest.mark.slow
@pytest.mark.backend
def test_round_on_generated_data(round_run, synth_root, tmp_path):
    """conftest.round_run: `augmine mine round RUN` on the mining run, as printed."""
    run = copy_run(round_run.run, tmp_path)
    planted = [set(p) for p in confusable_pairs(synth_root)]
    printed = round_run.output
    rep = load_stage_report(run, "round-1")     # its plan read from plans/round-1.json
    assert sorted(p.name for p in (run / "reports" / "round-1").iterdir()) == sorted(REPORT_FILES)
    for r in (list_stage_reports(run)[0], rep):       # phase-1, then the round
        sym = [{p["a_name"], p["b_name"]} for p in r["symmetric_pairs"][:5]]
        assert any(p in sym for p in planted), (r["stage"], sym, planted)
    chosen = rep["plan"]["weak_names"]
    assert len(chosen) == 2 and f"chose 2 classes: {', '.join(chosen)}" in printed
    assert "round 1 (oversample x3.0; 2 epochs, LR 0.002 -> 0.0028 -> 0.002)" in printed
    eff = rep["effect"]
    for name in chosen:                       # each chosen class with its support (5 images)
        assert f"control {next(c['control'] for c in eff['per_class'] if c['name'] == name):.3f}" \
            in printed and f"{name[:28]:<28}" in printed
    assert "chosen on val-half; measured on the other half of val (50 images" in printed
    assert "net of control" in printed and rep["before"]["stage"] == "phase-1"
    assert eff["control"] and set(eff["table"]) == {"chosen F1", "other F1", "top-1", "macro F1"}
    for row in eff["table"].values():         # every number carries a 95% interval
        for key in ("before", "after", "control", "change", "effect"):
            assert row[key]["lo"] <= row[key]["value"] <= row[key]["hi"]
    # the control trained beside the run, as many steps on the same LR, plain sampling
    ctrl = [r for r in RunDir(run / "branches" / "round-1" / "control").read_history()
            if r["stage"] == "round-1"]
    assert [r["lr"] for r in ctrl] == [r["lr"] for r in _round_rows(run)]
    steps = json.loads((run / "branches" / "round-1" / "control" / "state.json").read_text())["step"]
    assert steps == json.loads((run / "state.json").read_text())["step"]
    assert len(_round_rows(run)) == 2
    # a done round is not silently trained again
    res = run_cli("mine", "round", run, "--round", "1")
    assert res.exit_code != 0 and "already done" in res.output
    res = run_cli("mine", "history", run)
    assert res.exit_code == 0 and "round-1" in res.output


@pytest.mark.slow
def test_suspects_out_of_and_in_sample(round_run, tmp_path):
    """(A class-weight round and its control: test_faults.py::
    test_round_errors_suggest_commands_that_work.)"""
    run = copy_run(round_run.run, tmp_path)
    res = run_cli("mine", "suspects", run, "--per-class", "3")
    assert res.exit_code == 0, res.output
    assert "scored on val images, out of sample" in res.output
    rows = (run / "reports" / "round-1" / "suspects.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 2
    index = load_index(json_or_yaml_data(run))
    assert rows[1].split(",")[1] in set(index.val.paths)          # out of sample by default
    res = run_cli("mine", "suspects", run, "--per-class", "3", "--in-sample")
    assert "scored on train images, in sample (trained on)" in res.output
    rows = (run / "reports" / "round-1" / "suspects.csv").read_text().splitlines()
    assert rows[1].split(",")[1] in set(index.train.paths)


def json_or_yaml_data(run):
    return yaml.safe_load((run / "config.yaml").read_text())["data"]


@pytest.mark.slow
def test_factor_one_arm_trains_exactly_the_control(mining_run, tmp_path):
    """A plan whose classes get no extra samples trains exactly what the control trains
    (same seeds, same batches and updates: the same predictions, to 0.02 on every image and
    class), which is why `mine round` refuses it before training
    (test_round_verdicts.py::test_a_round_that_would_train_the_control_is_refused)."""
    from augmine.rounds.arms import arm_inputs, describe_arm
    from augmine.rounds.arms import same_as_control, last_phase_recipe
    from augmine.rounds.plans import load_run_index, mining_settings
    from augmine.rounds.runner import round_lr_range, round_schedule, round_steps, train_arm

    run = RunDir(copy_run(mining_run, tmp_path))
    index = load_run_index(run)
    factors = np.ones(index.num_classes)
    plan = OversamplingPlan(factors, [0, 1], index.class_ids, index.class_names)
    assert describe_arm(plan, "oversample") == "plain epochs (factor 1: no extra samples)"
    bs = run.config.batch_size
    assert same_as_control("oversample", plan, index, bs, last_phase_recipe(run))
    start = int(run.read_state().step)
    arms = {m: arm_inputs(m, plan, index, bs, len(index.train)) for m in ("oversample", "control")}
    steps = round_steps(index, arms["control"], bs, 1)
    schedule = round_schedule(*round_lr_range(run.config, mining_settings(run)), start, steps)
    probs = {m: train_arm(run.branch("factor-one", m), index, 1, "round-1", inputs, schedule,
                          False)[1] for m, inputs in arms.items()}
    assert np.abs(probs["oversample"] - probs["control"]).max() <= 0.02


@pytest.mark.slow
def test_harmful_round_lists_who_lost_and_warns(mining_run, tmp_path):
    """A round with a huge learning rate wrecks the model: the printout lists the classes
    whose F1 fell and warns in one line; without a control it says the effect is unmeasured."""
    run = copy_run(mining_run, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["mining"].update({"min_lr": 0.5, "max_lr": 5.0})
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = run_cli("mine", "round", run, "--epochs", "1", "--no-control", "--no-progress")
    assert res.exit_code == 0, res.output
    rep = load_stage_report(run, "round-1")     # its plan read from plans/round-1.json
    eff = rep["effect"]
    assert not eff["control"] and eff["table"]["top-1"]["effect"] is None
    assert "the effect net of control is unmeasured" in res.output
    assert eff["losers"] and "F1 fell most (against the start):" in res.output
    assert eff["losers"][0]["name"][:28] in res.output.split("F1 fell most")[1]
    warn = [line for line in res.output.splitlines() if line.startswith("WARNING")]
    assert len(warn) == 1 and "against the start" in warn[0]
    md = (run / "reports" / "round-1" / "report.md").read_text()
    assert warn[0] in md and "F1 fell most (against the start)" in md


@pytest.mark.slow
def test_holdout_selection_and_compare(synth_root, tmp_path):
    """``mining.holdout`` keeps a slice of train out of training from the first phase;
    weak classes are chosen on it, all of val measures, suspects are scored on it. Then
    `mine compare` trains every mode and a control beside the run and prints one table."""
    from augmine.analysis.plans import apply_holdout
    from augmine.rounds.plans import load_run_index
    from augmine.train.phases import train_run

    cfg = tiny_config(**MINING)
    cfg["phases"][0]["epochs"] = 2
    cfg["phases"][-1]["recipe"] = "light.yaml"    # augmentation gentle can soften
    cfg["mining"]["holdout"] = 0.25
    run = tmp_path / "run"
    train_run(cfg, synth_root, run, progress=False)
    index = load_run_index(run)
    assert len(index.split("holdout")) == 100 and len(index.train) == 300
    assert not set(index.split("holdout").paths) & set(index.train.paths)
    full = load_index(synth_root)
    again = apply_holdout(full, 0.25, 0)      # what the trainer used (same seed, same slice)
    assert again.train.paths.tolist() == index.train.paths.tolist()
    res = run_cli("mine", "round", run, "--epochs", "1", "--no-control", "--no-progress")
    assert res.exit_code == 0, res.output
    rep = load_stage_report(run, "round-1")     # its plan read from plans/round-1.json
    assert rep["plan"]["policy"]["selection"] == "holdout"
    assert rep["plan"]["policy"]["selection_images"] == 100
    assert rep["effect"]["measurement_images"] == len(full.val)
    assert "chosen on holdout; measured on all of val (100 images" in res.output
    res = run_cli("mine", "suspects", run, "--per-class", "2")
    assert "scored on holdout images, out of sample" in res.output
    rows = (run / "reports" / "round-1" / "suspects.csv").read_text().splitlines()[1:]
    assert {r.split(",")[1] for r in rows} <= set(index.split("holdout").paths)

    res = run_cli("mine", "compare", run, "--epochs", "1", "--no-progress")
    assert res.exit_code == 0, res.output
    table = res.output.split("effect net of control")[1].splitlines()
    assert [line.split()[0] for line in table[2:10]] == [
        "oversample", "class-weight", "recipe", "pairs", "gentle", "distill", "head", "control"]
    # gentle on a holdout-selected run: no val affinity, every chosen class at half strength
    gentle = yaml.safe_load(next((run / "plans").glob("compare-step-*-gentle.yaml")).read_text())
    assert gentle["classes"] and all(o["strength"] == 0.5 and "holdout" in o["why"]
                                     for o in gentle["classes"].values())
    assert (run / "branches").is_dir() and len(list_stage_reports(run)) == 2  # run unchanged


def test_round_effect_selection_and_measurement_never_overlap(synth_index):
    """The val-half selection and measurement images are disjoint, cover val, and split
    every class in two; the effect of a round is measured on the measurement half only."""
    from augmine.analysis.plans import selection_split
    from augmine.rounds.runner import measure_round

    y = np.asarray(synth_index.val.labels)
    sel, meas = selection_split(y, seed=0)
    assert not set(sel) & set(meas) and len(sel) + len(meas) == len(y)
    assert np.bincount(y[sel]).tolist() == np.bincount(y[meas]).tolist() == [5] * 10
    probs = np.eye(10, dtype=np.float32)[y]               # perfect on every image...
    wrong = probs.copy()
    wrong[sel] = np.roll(wrong[sel], 1, axis=1)           # ...wrong only on the selection half
    eff = measure_round(synth_index, "val-half", 0, [0, 1], wrong, wrong, wrong, reps=50)
    assert eff["measurement_images"] == len(meas) and eff["table"]["top-1"]["after"]["value"] == 1.0



# A planted weak class: 4 easily told apart classes, one of them rare in train (8 of 80
# images), so the model trained on them never predicts it. Oversampling exactly that class
# x10 for 2 epochs gives the round ten times more looks at it than the control's plain
# epochs (as many steps, same LR and seeds), which learn it only a little.
PLANTED = tiny_config(**{**MINING, "name": "planted",
                          "model": {**TINY["model"], "growth_rate": 8},
                          "mining": {"policy": "bottom-k", "k": 1, "factor": 10, "epochs": 2}})


@pytest.mark.slow
@pytest.mark.tensorflow   # its seeds were checked on TensorFlow; JAX draws other initial weights
def test_planted_weak_class_oversampling_helps_net_of_control(tmp_path):
    """Issue #12: a planted weak class that oversampling really helps shows a positive net
    effect. The last of 4 classes keeps 8 of its 80 train images; the round picks it
    (bottom-1 F1 on the selection half of val) and repeats it x10; its F1 on the
    measurement half (20 images of it) net of the control is positive, 95% interval above 0
    (about 30 s; with data seed 0 it held for training seeds 0, 1 and 2: +0.50, +0.28,
    +0.42, lower bounds +0.25, +0.08, +0.17; a factor-1 plan is exactly the control, see
    test_factor_one_round_has_no_effect_net_of_control)."""
    from augmine.rounds.runner import run_round
    from augmine.rounds.text import format_effect
    from augmine.data.synth import write_synthetic_dataset
    from augmine.train.phases import train_run

    root = tmp_path / "data"
    info = write_synthetic_dataset(root, num_classes=4, num_pairs=0, train_per_class=80,
                                   val_per_class=40, seed=0)
    weak, keep = info.classes[-1], 8
    img_dir = root / "train" / weak.wnid / "images"
    boxes = root / "train" / weak.wnid / f"{weak.wnid}_boxes.txt"
    rows = boxes.read_text().splitlines()
    for row in rows[keep:]:
        (img_dir / row.split("\t")[0]).unlink()
    boxes.write_text("\n".join(rows[:keep]) + "\n")

    run = tmp_path / "run"
    train_run(PLANTED, root, run, progress=False)
    res = run_round(run, progress=False)
    assert res.plan.weak_names == [weak.name] and res.plan.factors.max() == 10
    eff = res.report["effect"]
    assert eff["control"] and eff["chosen"] == [weak.name]
    chosen = eff["table"]["chosen F1"]
    shown = "\n".join(format_effect(eff))
    assert chosen["before"]["value"] < 0.2, shown          # planted: the start misses it
    # the strongest claim that holds reliably: the net effect's 95% interval lies above 0
    assert chosen["effect"]["value"] > 0.2 and chosen["effect"]["lo"] > 0, shown
