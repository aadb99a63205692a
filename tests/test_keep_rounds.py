"""Rounds that keep what the model knows: ``distill`` (a distillation term against the
round's start model) and ``head`` (only the classifier trains).

Fast tests use small Keras models or pure numpy; the slow ones run ``augmine mine round``
on a copy of the shared mining run (conftest.mining_run).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from support import copy_run

from augmine.analysis.effects import round_metric_names
from augmine.analysis.plans import make_plan, with_partners
from augmine.cli import cli
from augmine.core.errors import AugmineError


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _tiny_model(seed: int, classes: int = 4):
    import keras

    from augmine.model.sources import build_densenet

    keras.utils.set_random_seed(seed)
    return build_densenet(classes, width=8, growth_rate=4, blocks=2, layers_per_block=1)


# --------------------------------------------------------------------------- the parts

@pytest.mark.slow
@pytest.mark.backend
def test_distillation_keeps_what_the_teacher_knew_and_saves_a_plain_model(tmp_path):
    """A teacher memorises labels y; students start as the teacher and learn other labels:
    without distillation they forget the teacher's answers, with it they keep them."""
    import keras

    from augmine.model.sources import attach_teacher, distillation_loss
    from augmine.runs.factories import load_checkpoint

    def mlp():                 # no BatchNormalization: teacher and student compute alike
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
                                 keras.layers.Flatten(), keras.layers.Dense(32, "relu"),
                                 keras.layers.Dense(4, "softmax")])

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (64, 8, 8, 3)).astype("uint8")
    y = rng.integers(0, 4, 64)
    teacher = mlp()
    teacher.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    teacher.fit(x, y, epochs=40, batch_size=64, verbose=0)
    p = teacher.predict(x, verbose=0)
    assert np.allclose(keras.ops.convert_to_numpy(distillation_loss(p, p, 2.0)), 0, atol=1e-5)
    agree, drift, losses = {}, {}, {}
    for weight in (0.0, 2.0):
        student = mlp()
        student.set_weights(teacher.get_weights())
        student.compile(optimizer=keras.optimizers.Adam(0.01),
                        loss="sparse_categorical_crossentropy")
        attach_teacher(student, teacher, temperature=2.0, weight=weight)
        h = student.fit(x, (y + 1) % 4, epochs=10, batch_size=64, verbose=0,
                        validation_data=(x, (y + 1) % 4), validation_freq=10)
        q = student.predict(x, verbose=0)
        agree[weight] = float((q.argmax(1) == p.argmax(1)).mean())
        drift[weight] = float(np.abs(q - p).mean())
        losses[weight] = (h.history["loss"][-1], h.history["val_loss"][-1])
    assert agree[0.0] <= 0.8 and agree[2.0] >= 0.95, agree
    assert drift[2.0] < 0.6 * drift[0.0], drift
    # the distillation term is in the training loss only; val_loss is the plain loss
    assert losses[2.0][0] > losses[2.0][1] + 0.05, losses
    student.save(tmp_path / "s.keras")                  # the student alone, loads anywhere
    back = load_checkpoint(tmp_path / "s.keras")
    assert back.count_params() == teacher.count_params()
    assert np.allclose(back.predict(x, verbose=0), q, atol=1e-6)


@pytest.mark.backend
def test_distillation_term_is_zero_at_the_start_with_batchnorm():
    """The teacher runs in training mode like the student (BatchNormalization on the batch's
    statistics), so a student equal to its teacher pays nothing for distillation, and the
    teacher's moving statistics do not move."""
    import keras

    from augmine.model.sources import attach_teacher

    teacher, student = _tiny_model(0), _tiny_model(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (32, 16, 16, 3)).astype("uint8")
    y = rng.integers(0, 4, 32)
    moving = [np.asarray(v.numpy()) for v in teacher.non_trainable_variables]
    student.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    plain = float(student.compute_loss(x, y, student(x, training=True), training=True))
    attach_teacher(student, teacher, temperature=2.0, weight=1.0)
    with_term = float(student.compute_loss(x, y, student(x, training=True), training=True))
    assert with_term == pytest.approx(plain, abs=1e-4)
    assert all(np.array_equal(a, np.asarray(v.numpy()))
               for a, v in zip(moving, teacher.non_trainable_variables))
    # in inference mode the same weights differ: the term would not be zero there
    p_inf = keras.ops.convert_to_numpy(teacher(x, training=False))
    p_train = keras.ops.convert_to_numpy(student(x, training=True))
    assert np.abs(p_inf - p_train).max() > 1e-3


def test_head_layers_and_freezing():
    from augmine.model.sources import freeze_all_but_head, head_layer_names, set_trainable

    model = _tiny_model(0)
    assert head_layer_names(model, 1) == ["logits"]
    # the DenseNet's last block: its BN and conv (1 layer a block here), the final BN, logits
    assert head_layer_names(model, 4) == ["block2_layer1_bn", "block2_layer1_conv",
                                          "final_bn", "logits"]
    frozen = freeze_all_but_head(model, 1)
    assert [w.path for w in model.trainable_weights] == ["logits/kernel", "logits/bias"]
    assert "stem_conv" in frozen and "logits" not in frozen
    set_trainable(model, frozen, True)
    assert len(model.trainable_weights) > 2
    with pytest.raises(AugmineError, match="mining.head_layers 99: the model has"):
        head_layer_names(model, 99)


def test_distill_and_head_in_the_mode_table(synth_index):
    from augmine.rounds.arms import (COMPARE_MODES, MODES, arm_inputs, arm_length, describe_arm,
                                     model_options, with_partner_emphasis)
    from augmine.runs.config import MiningConfig

    assert {"distill", "head"} <= set(MODES) and {"distill", "head"} <= set(COMPARE_MODES)
    f1 = np.linspace(0.1, 1.0, 10)
    cm = np.diag([5] * 10)
    cm[0, 5] = 3                                       # class 0's partner: class 5
    plan = with_partners(make_plan(f1, synth_index.class_ids, synth_index.class_names, k=2), cm)
    # distill samples as oversample, head as pairs: their controls get those budgets
    assert arm_length("distill", plan, synth_index) == arm_length("oversample", plan, synth_index)
    assert arm_length("head", plan, synth_index) == arm_length("pairs", plan, synth_index)
    options = model_options(MiningConfig(), "start.keras")
    assert options == {"teacher": {"checkpoint": "start.keras", "temperature": 2.0,
                                   "weight": 1.0}, "head_layers": 1}
    distill = arm_inputs("distill", plan, synth_index, 32, **options)
    assert distill["teacher"] == options["teacher"] and distill["plan"].factors[5] == 1.0
    assert arm_inputs("head", plan, synth_index, 32, **options)["head_layers"] == 1
    with pytest.raises(AugmineError, match="mode distill: no start model"):
        arm_inputs("distill", plan, synth_index, 32)
    # --partners given: distill repeats the partners too (recorded in the plan)
    with_partner_emphasis(plan, True)
    assert arm_length("distill", plan, synth_index) == arm_length("pairs", plan, synth_index)
    assert "with their confusion partners" in describe_arm(plan, "distill")


# --------------------------------------------------------------------------- rounds

def _weights(path):
    from augmine.runs.factories import load_checkpoint

    model = load_checkpoint(path, compile=False)
    return model, {w.path: np.asarray(w.numpy()) for w in model.weights}


@pytest.mark.slow
@pytest.mark.backend
def test_head_round_changes_only_the_head(mining_run, tmp_path):
    """`mine round --mode head` reports the usual rows; its arm, trained again from the same
    start with the round's plan (the keep rule, which may put the start back, comes after
    the arm in `mine round`), changes only the head's weights, trains whole again and keeps
    its optimizer's step."""
    from augmine.rounds.arms import arm_inputs, model_options
    from augmine.rounds.plans import load_run_index, mining_settings
    from augmine.rounds.runner import round_lr_range, round_schedule, round_steps, train_arm
    from augmine.rounds.plans import RoundState
    from augmine.runs.rundir import RunDir

    cli_run = copy_run(mining_run, tmp_path / "cli")
    res = run_cli("mine", "round", cli_run, "--mode", "head", "--epochs", "1", "--no-control",
                  "--no-progress")
    assert res.exit_code == 0, res.output
    assert "head: only the head trains" in res.output
    plan = RoundState.read(cli_run).read_plan(1)
    run = RunDir(copy_run(mining_run, tmp_path / "arm"))
    index = load_run_index(run)
    bs, start_step = run.config.batch_size, int(run.read_state().step)
    start_file = tmp_path / "start.keras"
    start_file.write_bytes(run.checkpoint("last").read_bytes())
    inputs = arm_inputs("head", plan, index, bs, **model_options(run.config.mining, start_file))
    schedule = round_schedule(*round_lr_range(run.config, mining_settings(run)), start_step,
                              round_steps(index, inputs, bs, 1))
    train_arm(run, index, 1, "round-1", inputs, schedule, False)
    _, start = _weights(start_file)
    model, after = _weights(run.checkpoint("last"))
    changed = sorted(k for k in start if not np.array_equal(start[k], after[k]))
    assert changed == ["logits/bias", "logits/kernel"]       # every other weight bit-identical
    assert all(layer.trainable for layer in model.layers)    # the run trains whole again
    from augmine.runs.factories import load_checkpoint     # with its optimizer's state
    step = run.read_state().step
    assert step > start_step
    assert int(np.asarray(load_checkpoint(run.checkpoint("last")).optimizer.iterations)) == step
    rep = json.loads((cli_run / "reports" / "round-1" / "report.json").read_text())
    assert rep["meta"]["mode"] == "head"
    assert list(rep["effect"]["table"]) == list(round_metric_names(rep["effect"]["partners"]))


@pytest.mark.slow
@pytest.mark.backend
def test_distill_round_reports_the_usual_rows(mining_run, tmp_path):
    run = copy_run(mining_run, tmp_path)
    res = run_cli("mine", "round", run, "--mode", "distill", "--epochs", "1", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "distill: oversample x3.0, every class kept near the start model" in res.output
    rep = json.loads((run / "reports" / "round-1" / "report.json").read_text())
    eff = rep["effect"]
    assert rep["meta"]["mode"] == "distill" and eff["control"]
    # the partner row when a partner is not chosen itself (the partners chosen per backend)
    assert list(eff["table"]) == list(round_metric_names(eff["partners"]))
    assert {"chosen F1", "other F1", "top-1", "macro F1"} <= set(eff["table"])
    for row in eff["table"].values():
        assert row["effect"]["lo"] <= row["effect"]["value"] <= row["effect"]["hi"]
    # the control: plain sampling, the same steps as the distill arm (oversample's budget)
    state = json.loads((run / "state.json").read_text())
    control = json.loads((run / "branches" / "round-1" / "control" / "state.json").read_text())
    assert control["step"] == state["step"] and rep["meta"]["steps"] > 0
