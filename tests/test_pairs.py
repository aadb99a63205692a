"""The ``pairs`` round mode (each chosen class oversampled with its confusion partners),
the mode table of :mod:`augmine.rounds.arms`, warnings only when the interval says so, and the
arm labels on piped round/compare output.

Fast tests are pure (numpy) or use a run folder fabricated with ``write_stage_report``;
the slow one trains a tiny DenseNet on the generated data (planted striped/dotted pairs).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from augmine.cli import cli
from augmine.core.errors import AugmineError
from augmine.analysis.effects import effect_note, effect_table, effect_warning
from augmine.analysis.metrics import confusion_partners
from augmine.analysis.plans import (OversamplingPlan, make_plan, pairs_plan, partner_classes,
                                    plan_partners, with_partners)
from augmine.analysis.reports import load_stage_report, write_stage_report
from augmine.data.synth import confusable_pairs


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# --------------------------------------------------------------------------- partner choice

def test_partners_are_the_most_confused_classes_both_ways():
    cm = np.array([[50, 2, 7, 0, 0],    # row = true class
                   [6, 40, 0, 0, 0],    # 0 <-> 1: 2 + 6 = 8 confusions; 0 <-> 2: 7 + 0 = 7
                   [0, 0, 45, 0, 0],
                   [0, 0, 0, 50, 0],
                   [0, 0, 0, 0, 50]])   # 3 and 4 never confused with anything
    assert confusion_partners(cm, [0]) == [[(1, 8)]]          # both directions count
    assert confusion_partners(cm, [0], partners=2) == [[(1, 8), (2, 7)]]
    assert confusion_partners(cm, [0], partners=4) == [[(1, 8), (2, 7)]]   # zeros skipped
    assert confusion_partners(cm, [3, 2, 1]) == [[], [(0, 7)], [(0, 8)]]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(AugmineError, match="--partners"):
            confusion_partners(cm, [0], partners=bad)
    with pytest.raises(AugmineError, match="square"):
        confusion_partners(cm[:3], [0])


def test_pairs_plan_repeats_partners_like_their_class_and_round_trips():
    names = [f"c{i}" for i in range(6)]
    f1 = np.array([0.2, 0.3, 0.9, 0.9, 0.9, 0.9])
    plan = make_plan(f1, [f"n{i}" for i in range(6)], names, k=2, factor=4.0, cap=4.0)
    assert plan.factors[:2].tolist() == [3.2, 2.8]      # proportional: 4 * (1 - F1)
    cm = np.diag([10] * 6)
    cm[0, 2], cm[3, 0] = 5, 1           # c0 <-> c2 (5), c0 <-> c3 (1)
    cm[1, 2], cm[1, 0] = 3, 2           # c1 <-> c2 (3), c1 <-> c0 (2): a chosen partner
    plan = with_partners(plan, cm, partners=2)
    assert plan.factors.tolist() == make_plan(f1, plan.class_ids, names, k=2, factor=4.0,
                                              cap=4.0).factors.tolist()   # unchanged
    assert plan.policy["partners"] == [
        {"class": "c0", "partners": ["c2", "c1"], "confusions": [5, 2]},
        {"class": "c1", "partners": ["c2", "c0"], "confusions": [3, 2]}]
    again = OversamplingPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert plan_partners(again) == {0: [2, 1], 1: [2, 0]}
    assert partner_classes(again) == [2]                 # c0/c1 are chosen themselves
    pairs = pairs_plan(again)
    # a partner takes its class's factor, the largest when shared: c2 (of c0 and c1) and
    # c1 (chosen at 2.8, partner of c0 at 3.2) get 3.2; the others stay 1
    assert pairs.factors.tolist() == pytest.approx([3.2, 3.2, 3.2, 1, 1, 1])
    assert pairs.weak == [0, 1] and pairs.policy["partners"] == plan.policy["partners"]
    # a plan without partners (older files, hand-written) oversamples the chosen only
    assert pairs_plan(make_plan(f1, plan.class_ids, names, k=1)).factors.tolist() == \
        [3.0, 1, 1, 1, 1, 1]


def test_partner_f1_row_measures_partners_apart_from_the_others():
    y = np.repeat(np.arange(4), 50)
    pred = y.copy()
    pred[(y == 1)] = 0                  # class 1 (the partner) always predicted as 0
    t = effect_table(y, y, pred, y, num_classes=4, chosen=[0], partners=[1, 0], reps=50)
    assert list(t) == ["chosen F1", "partner F1", "other F1", "top-1", "macro F1"]
    assert t["partner F1"]["after"]["value"] == 0.0
    assert t["other F1"]["after"]["value"] == 1.0       # classes 2 and 3 only
    assert t["partner F1"]["effect"]["value"] == -1.0
    plain = effect_table(y, y, pred, y, num_classes=4, chosen=[0], reps=50)
    assert list(plain) == ["chosen F1", "other F1", "top-1", "macro F1"]
    assert plain["other F1"]["after"]["value"] == pytest.approx(2 / 3)  # partner counted


# --------------------------------------------------------------------------- warnings

def _table(top1, macro):
    """An effect table whose top-1 / macro F1 effects are (value, lo, hi)."""
    cell = lambda v: {"value": v[0], "lo": v[1], "hi": v[2]}  # noqa: E731
    zero = {"value": 0.0, "lo": -0.01, "hi": 0.01}
    row = lambda v: {"before": None, "after": None, "control": None,  # noqa: E731
                     "change": cell(v), "effect": cell(v)}
    return {"chosen F1": row((0.1, 0.0, 0.2)), "other F1": row(tuple(zero.values())),
            "top-1": row(top1), "macro F1": row(macro)}


def test_warning_only_when_the_interval_excludes_zero():
    # the case: top-1 -0.6 pt with an interval [-3.8, +2.6]: no warning
    t = _table((-0.006, -0.038, 0.026), (0.002, -0.01, 0.015))
    assert effect_warning(t, True) is None
    note = effect_note(t, True)
    assert note == ("no measurable change: top-1 -0.6 pt [-3.8, +2.6] against the control "
                    "(the 95% interval includes zero)")
    # the interval below zero: a WARNING naming it; the other metric's noise in the note
    t = _table((-0.03, -0.05, -0.004), (-0.01, -0.03, 0.012))
    assert effect_warning(t, True) == ("WARNING: the round lowered top-1 -3.0 pt [-5.0, -0.4] "
                                       "against the control")
    assert effect_note(t, True).startswith("within the noise: macro F1 -0.010 [-0.030, ")
    t = _table((-0.03, -0.05, -0.004), (-0.02, -0.03, -0.01))
    assert "top-1" in effect_warning(t, False) and "macro F1 -0.020" in effect_warning(t, False)
    assert effect_warning(t, False).endswith("against the start") and effect_note(t, False) is None
    # a gain, or nothing below zero: neither line
    t = _table((0.01, -0.01, 0.03), (0.0, -0.01, 0.01))
    assert effect_warning(t, True) is None and effect_note(t, True) is None


def test_every_row_below_zero_is_named_in_the_verdict():
    """The issue's pairs round: other F1 -0.057 [-0.101, -0.014] net of control while top-1
    and macro F1 were within the noise: the verdict names the other F1 loss (and partner
    F1's), and the noise note no longer says "no measurable change"."""
    from augmine.analysis.effects import measurable_losses

    t = _table((-0.006, -0.038, 0.026), (-0.01, -0.03, 0.012))
    t["other F1"]["effect"] = {"value": -0.057, "lo": -0.101, "hi": -0.014}
    t["partner F1"] = {**t["other F1"], "effect": {"value": -0.070, "lo": -0.128, "hi": -0.006}}
    assert measurable_losses(t, True) == ["partner F1", "other F1"]
    assert effect_warning(t, True) == ("WARNING: the round lowered partner F1 -0.070 [-0.128, "
                                       "-0.006] and other F1 -0.057 [-0.101, -0.014] against "
                                       "the control")
    assert effect_note(t, True).startswith("within the noise: top-1 -0.6 pt [-3.8, +2.6] and "
                                           "macro F1 -0.010")
    # an interval touching zero is no measurable loss; a chosen-class loss is one
    t["other F1"]["effect"]["hi"] = t["partner F1"]["effect"]["hi"] = 0.0
    assert measurable_losses(t, True) == [] and effect_warning(t, True) is None
    assert effect_note(t, True).startswith("no measurable change: top-1 -0.6 pt")
    t["chosen F1"]["effect"] = {"value": -0.2, "lo": -0.3, "hi": -0.1}
    assert measurable_losses(t, True) == ["chosen F1"]
    # without a control the change against the start decides
    t["top-1"]["change"] = {"value": -0.05, "lo": -0.08, "hi": -0.02}
    assert measurable_losses(t, False) == ["top-1"]
    assert effect_warning(t, False).endswith("top-1 -5.0 pt [-8.0, -2.0] against the start")


def test_noisy_fall_on_real_tables_is_a_note_and_a_clear_one_warns():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 40)
    control = np.where(rng.random(len(y)) < 0.7, y, (y + 1) % 5)
    slip = control.copy()
    lose, win = np.flatnonzero(control == y)[:8], np.flatnonzero(control != y)[:5]
    slip[lose], slip[win] = (y[lose] + 1) % 5, y[win]   # 8 images lost, 5 won: net -3
    t = effect_table(y, control, slip, control, num_classes=5, chosen=[0], reps=300)
    top = t["top-1"]["effect"]
    assert top["value"] == pytest.approx(-0.015) and top["lo"] < 0 < top["hi"]     # within the noise
    assert effect_warning(t, True) is None and "no measurable change" in effect_note(t, True)
    wreck = np.where(y >= 3, 0, control)            # two classes lost entirely
    t = effect_table(y, control, wreck, control, num_classes=5, chosen=[0], reps=300)
    assert effect_warning(t, True).startswith("WARNING: the round lowered top-1 -")


# --------------------------------------------------------------------------- the mode table

def test_mode_table_and_the_same_budget(synth_index):
    from augmine.rounds.arms import (COMPARE_MODES, MODE_TABLE, MODES, arm, arm_inputs, arm_length,
                              compare_length, describe_arm)
    from augmine.feed.sampling import epoch_length

    assert MODES == ("oversample", "class-weight", "pairs", "gentle", "distill", "head")
    assert COMPARE_MODES == tuple(MODE_TABLE) and {"recipe", "pairs", "gentle"} <= \
        set(COMPARE_MODES)
    f1 = np.linspace(0.1, 1.0, 10)
    cm = np.diag([5] * 10)
    cm[0, 5] = 3                                     # class 0's partner: class 5
    plan = with_partners(make_plan(f1, synth_index.class_ids, synth_index.class_names, k=2),
                         cm)
    assert describe_arm(plan, "pairs") == "pairs: oversample x3.0 with 1 confusion partner each"
    # 40 images a class: oversample adds 2 x 2 x 40, pairs 2 more x 40 for class 5
    assert arm_length("oversample", plan, synth_index) == 560
    assert arm_length("pairs", plan, synth_index) == 640
    assert compare_length(plan, synth_index) == 640
    batches = lambda inputs: -(-epoch_length(synth_index, inputs["plan"]) // 32)  # noqa: E731
    pairs = arm_inputs("pairs", plan, synth_index, 32)
    assert pairs["plan"].factors[[0, 1, 5]].tolist() == [3.0, 3.0, 3.0]
    control = arm_inputs("control", plan, synth_index, 32,
                         length=arm_length("pairs", plan, synth_index))
    assert batches(control) == batches(pairs) == 20
    assert np.ptp(control["plan"].factors) == 0     # plain sampling, stretched evenly
    # in compare every arm is as long as the longest mode, emphasis kept
    over = arm_inputs("oversample", plan, synth_index, 32, length=640)
    assert batches(over) == 20 and over["plan"].factors[0] / over["plan"].factors[9] == 3.0
    cw = arm_inputs("class-weight", plan, synth_index, 32, length=640)
    assert batches(cw) == 20 and cw["class_weight"][0] > cw["class_weight"][9]
    with pytest.raises(AugmineError, match="choose one of oversample, class-weight, pairs"):
        arm("recipe", MODES)                     # compare only


# --------------------------------------------------------------------------- selection only

@pytest.fixture
def fake_run(tmp_path, synth_root, synth_index):
    """A run folder whose phase-1 val predictions confuse the planted pair's first class
    with its mate on the selection half and with another class on the measurement half."""
    from augmine.analysis.plans import selection_split

    run = tmp_path / "run"
    run.mkdir()
    cfg = {"name": "fake", "data": str(synth_root), "batch_size": 32, "seed": 0,
           "phases": [{"size": 16, "epochs": 1, "recipe": "none"}],
           "mining": {"policy": "bottom-k", "k": 1, "factor": 3, "epochs": 1}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    a, b = (synth_index.class_index(n) for n in confusable_pairs(synth_root)[0])
    other = next(c for c in range(synth_index.num_classes) if c not in (a, b))
    y = np.asarray(synth_index.val.labels)
    sel, meas = selection_split(y, 0)
    pred = y.copy()
    pred[sel[y[sel] == a][:4]] = b             # selection half: a -> its planted mate
    pred[meas[y[meas] == a][:5]] = other       # measurement half: a -> another class
    probs = np.full((len(y), 10), 0.02, np.float32)
    probs[np.arange(len(y)), pred] = 0.82
    write_stage_report(run, "phase-1", y, probs, synth_index.class_ids,
                       synth_index.class_names, meta={"kind": "phase", "size": 16})
    return run, synth_index.class_names[a], synth_index.class_names[b], \
        synth_index.class_names[other]


def test_partners_come_from_the_selection_images_only(fake_run):
    run, a, b, other = fake_run
    res = run_cli("mine", "plan", run)
    assert res.exit_code == 0, res.output
    plan = json.loads((run / "plans" / "round-1.json").read_text())
    assert plan["weak_names"] == [a]
    # on all of val `other` is the more confused (5 against 4); the selection half says b
    assert plan["policy"]["partners"] == [{"class": a, "partners": [b], "confusions": [4]}]
    assert plan["policy"]["partners_per_class"] == 1
    assert "oversampled with them by --mode pairs" in res.output
    assert f"  {a} <-> {b} (4 confusions)" in res.output
    res = run_cli("mine", "plan", run, "--partners", "0")
    assert res.exit_code != 0 and "--partners" in res.output


# --------------------------------------------------------------------------- a real round

@pytest.fixture(scope="module")
def trained_pairs_run(tmp_path_factory, mining_run):
    """The shared mining run (15 epochs at 16 px, the planted pairs confused) with rounds of
    the weakest class only, 1 epoch: keep it unchanged, copy it to run rounds."""
    run = tmp_path_factory.mktemp("pairs") / "run"
    shutil.copytree(mining_run, run)
    raw = yaml.safe_load((run / "config.yaml").read_text())
    raw["mining"] = {**raw.get("mining", {}), "k": 1, "epochs": 1}
    (run / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return run


def _index_of(lines, text):
    return next(i for i, line in enumerate(lines) if text in line)


@pytest.mark.slow
def test_pairs_round_and_compare_through_the_cli(trained_pairs_run, tmp_path):
    """`mine round --mode pairs`: the chosen class and its partner oversampled alike, a
    control with as many steps, the report names the pair and measures the partner; every
    arm's header comes before its labelled epoch lines; `mine compare --mode pairs` too."""
    from augmine.runs.rundir import RunDir

    run = tmp_path / "run"
    shutil.copytree(trained_pairs_run, run)
    res = run_cli("mine", "round", run, "--mode", "pairs", "--no-progress")
    assert res.exit_code == 0, res.output
    rep = load_stage_report(run, "round-1")     # its plan read from plans/round-1.json
    assert rep["meta"]["mode"] == "pairs"
    (chosen,) = rep["plan"]["weak_names"]
    (row,) = rep["plan"]["policy"]["partners"]
    assert row["class"] == chosen and len(row["partners"]) == 1 and row["confusions"][0] > 0
    partner = row["partners"][0]
    assert rep["meta"]["partners"] == rep["plan"]["policy"]["partners"]
    assert json.loads((run / "plans" / "round-1.json").read_text())["policy"]["partners"] == \
        [row]                                   # a resumed round reads the same partners
    out = res.output.splitlines()
    assert any(line.startswith("round 1 (pairs: oversample x3.0 with 1 confusion partner each; "
                               "1 epochs") for line in out)
    assert f"  {chosen} <-> {partner} ({row['confusions'][0]} confusions)" in out
    eff = rep["effect"]
    assert eff["chosen"] == [chosen] and eff["partners"] == [partner]
    assert list(eff["table"]) == ["chosen F1", "partner F1", "other F1", "top-1", "macro F1"]
    assert any(line.startswith("partner F1") for line in out)
    assert "partner classes, F1 before -> after (control) [support]:" in out
    # both classes repeated x3 in the round; the control as many steps, plain sampling
    arm_state = json.loads((run / "state.json").read_text())
    ctrl = RunDir(run / "branches" / "round-1" / "control")
    assert ctrl.read_state().step == arm_state["step"]
    # piped output: each arm's header, then its labelled epoch line
    head = _index_of(out, "round 1 (pairs): training the round arm, 1 epoch")
    assert head < _index_of(out, "round-1 epoch 1/1: ") < \
        _index_of(out, "round 1 (pairs): training the control") < \
        _index_of(out, "round-1 control epoch 1/1: ")
    assert not any(line.startswith("epoch 1/1") for line in out)   # no unlabelled lines
    md = (run / "reports" / "round-1" / "report.md").read_text()
    assert f"| {partner} (confusion partner) |" in md and "| partner F1 |" in md

    res = run_cli("mine", "compare", run, "--mode", "pairs", "--epochs", "1", "--no-progress")
    assert res.exit_code == 0, res.output
    out = res.output.splitlines()
    assert _index_of(out, "compare: mode pairs (1/2), 1 epoch") < \
        _index_of(out, "compare pairs epoch 1/1: ") < _index_of(out, "compare: control (2/2)") \
        < _index_of(out, "compare control epoch 1/1: ")
    table = res.output.split("effect net of control")[1].splitlines()
    assert "partner F1" in table[1] and [line.split()[0] for line in table[2:4]] == \
        ["pairs", "control"]


@pytest.mark.slow
def test_interrupted_pairs_round_resumes_with_its_partners(trained_pairs_run, tmp_path):
    """The partners are part of the round's plan: an interrupted pairs round resumes with
    them; other partners (or another mode) ask for --redo instead of mixing two plans."""
    import keras

    from augmine.rounds.runner import run_round
    from augmine.rounds.plans import round_status

    run = tmp_path / "run"
    shutil.copytree(trained_pairs_run, run)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_round(run, mode="pairs", progress=False, extra_callbacks=[Interrupt()])
    assert round_status(run, 1) == "interrupted"
    saved = json.loads((run / "plans" / "round-1.json").read_text())["policy"]
    assert saved["partners"] and saved["partners_per_class"] == 1
    with pytest.raises(AugmineError, match="interrupted with another plan"):
        run_round(run, mode="pairs", progress=False, partners=2)
    with pytest.raises(AugmineError, match="interrupted in pairs mode"):
        run_round(run, mode="oversample", progress=False)
    res = run_round(run, mode="pairs", progress=False)      # only the control is left
    assert res.resumed and round_status(run, 1) == "done"
    assert res.plan.policy["partners"] == saved["partners"]
    assert res.report["meta"]["partners"] == saved["partners"]
