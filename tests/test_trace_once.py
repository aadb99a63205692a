"""Trace once: a fit traces its train step once per input signature, and the arms of a round
reuse the steps traced before (counted as benchmarks/round_footprint.py counts them: each run
of ``train_step`` / ``predict_step`` inside a ``tf.function`` being traced)."""

from __future__ import annotations

from collections import Counter

import pytest
from support import ONE_PHASE, copy_run, write_config


@pytest.fixture
def traces(monkeypatch):
    """A Counter of ``train`` and ``predict`` step traces while the test runs."""
    import keras

    from augmine.core.runtime import import_tensorflow

    tf = import_tensorflow()
    counts = Counter()
    for kind in ("train", "predict"):
        step = getattr(keras.Model, f"{kind}_step")

        def counted(model, data, step=step, kind=kind):
            if tf.inside_function():
                counts[kind] += 1
            return step(model, data)

        monkeypatch.setattr(keras.Model, f"{kind}_step", counted)
    return counts


@pytest.mark.tensorflow
def test_a_phase_traces_its_train_step_once(traces, synth_root, tmp_path):
    """Keras builds the optimizer and the metrics inside the first trace when no strategy is
    in scope, which used to trace every fit's train step twice on the same input shape."""
    from augmine.train.phases import train_run

    train_run(write_config(tmp_path, phases=[{**ONE_PHASE[0], "epochs": 2}]), synth_root,
              tmp_path / "run", progress=False)
    assert traces["train"] == 1
    # the predict step: a full batch, then the relaxed shape of the last, partial one
    assert traces["predict"] == 2


def _weights(path):
    """Every variable of a checkpoint: the model's, then its optimizer's (step, slots)."""
    from augmine.runs.factories import load_checkpoint

    model = load_checkpoint(path)
    return [v.numpy() for v in [*model.variables, *model.optimizer.variables]]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and (x == y).all() for x, y in zip(a, b))


@pytest.mark.slow
@pytest.mark.tensorflow
def test_a_round_and_its_control_trace_once_and_train_what_new_models_train(
        traces, mining_run, tmp_path, monkeypatch):
    """`mine round` (the round, then its control from the same start): the control trains
    in the round's model (the train and predict steps traced once for both), and the
    checkpoints and predictions equal those of new models (reuse off), to the bit."""
    import numpy as np
    from click.testing import CliRunner

    from augmine.cli import cli
    from augmine.train import evaluation as compiled

    compiled.forget_models()
    reused, fresh = copy_run(mining_run, tmp_path, "reused"), copy_run(mining_run, tmp_path)
    res = CliRunner().invoke(cli, ["mine", "round", str(reused), "--epochs", "1",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (traces["train"], traces["predict"]) == (1, 2)
    monkeypatch.setattr(compiled, "reuses_models", lambda: False)
    res = CliRunner().invoke(cli, ["mine", "round", str(fresh), "--epochs", "1",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (traces["train"], traces["predict"]) == (3, 6)     # new models: 2 + 4 more
    for ckpt in ("checkpoints/last.keras", "branches/round-1/control/checkpoints/last.keras"):
        assert _same(_weights(reused / ckpt), _weights(fresh / ckpt)), ckpt
    with np.load(reused / "reports/round-1/predictions.npz") as a, \
            np.load(fresh / "reports/round-1/predictions.npz") as b:
        assert a.files == b.files and all((a[k] == b[k]).all() for k in a.files)


@pytest.mark.tensorflow
def test_predictions_of_a_kept_model_equal_a_new_models(traces, trained_run, synth_index):
    """`predict_checkpoint` (recipe compare's, the keep rule's and the planner's predictions
    of a checkpoint) loads each checkpoint of a run into one kept model: its predict step is
    traced once for all of them, also across `keras.backend.clear_session()` (recipe compare
    calls it between arms), and the predictions are a new model's, to the bit."""
    import keras

    from augmine.runs.factories import load_checkpoint
    from augmine.train import evaluation as compiled
    from augmine.train.evaluation import evaluate_model, predict_checkpoint

    checkpoints = sorted(trained_run.run.path.glob("checkpoints/*.keras"))
    assert len(checkpoints) >= 3
    new = [evaluate_model(load_checkpoint(c, compile=False), synth_index, 32, 32)[1]
           for c in checkpoints]
    assert traces["predict"] == 2 * len(checkpoints)
    compiled.forget_models()
    traces.clear()
    for path, expected in zip(checkpoints, new):
        y_true, probs = predict_checkpoint(path, synth_index, 32, 32)
        assert probs.dtype == expected.dtype and (probs == expected).all(), path.name
        keras.backend.clear_session()
    assert traces["predict"] == 2
    assert not (new[0] == new[-1]).all()      # the checkpoints differ: the weights were loaded


@pytest.mark.slow
@pytest.mark.tensorflow
def test_a_kept_model_on_another_schedule_traces_its_train_step_anew(traces, mining_run,
                                                                      tmp_path, monkeypatch):
    """An arm on another learning-rate schedule than the kept model's train step was traced
    with gets a new train step (a reused one would keep the old schedule): it trains what a
    new model trains on that schedule."""
    import numpy as np

    from augmine.analysis.plans import OversamplingPlan
    from augmine.rounds.arms import arm_inputs
    from augmine.rounds.plans import load_run_index
    from augmine.rounds.runner import round_schedule, round_steps, train_arm
    from augmine.runs.rundir import RunDir
    from augmine.train import evaluation as compiled

    compiled.forget_models()
    run = RunDir(copy_run(mining_run, tmp_path))
    index = load_run_index(run)
    plan = OversamplingPlan(np.ones(index.num_classes), [0, 1], index.class_ids,
                            index.class_names)
    inputs = arm_inputs("control", plan, index, run.config.batch_size, len(index.train))
    start = int(run.read_state().step)
    steps = round_steps(index, inputs, run.config.batch_size, 1)
    slow, fast = (round_schedule(0.002, top, start, steps) for top in (0.003, 0.05))

    def arm(name, schedule):
        branch = run.branch("schedules", name)
        train_arm(branch, index, 1, "round-1", inputs, schedule, False)
        return _weights(branch.checkpoint("last"))

    on_slow, on_fast = arm("slow", slow), arm("fast", fast)
    assert traces["train"] == 2
    monkeypatch.setattr(compiled, "reuses_models", lambda: False)
    assert _same(on_fast, arm("fast-new", fast))
    assert not _same(on_slow, on_fast)


@pytest.mark.slow
@pytest.mark.tensorflow
def test_recipe_compare_arms_train_in_one_model_what_new_models_train(
        traces, synth_root, tmp_path, monkeypatch):
    """`recipe compare` (2 arms, 2 sizes): the second arm trains in the first arm's model,
    its initial state a new model's of its config and seed, so the train step is traced once
    per input size for both arms; every arm's `last.keras` and stored predictions equal
    those of new models (reuse off), to the bit."""
    import numpy as np
    from click.testing import CliRunner

    from augmine.cli import cli
    from augmine.train import evaluation as compiled

    config = write_config(tmp_path, phases=[{"size": 16, "epochs": 1, "recipe": "none"},
                                            {"size": 32, "epochs": 1, "recipe": "none"}])

    def compare(out):
        res = CliRunner().invoke(cli, ["recipe", "compare", "none", "light", "--data",
                                       str(synth_root), "--config", str(config), "--out",
                                       str(out), "--no-progress"])
        assert res.exit_code == 0, res.output
        return out

    compiled.forget_models()
    reused = compare(tmp_path / "reused")
    assert traces["train"] == 2                     # 16 px and 32 px, both arms
    monkeypatch.setattr(compiled, "reuses_models", lambda: False)
    traces.clear()
    fresh = compare(tmp_path / "fresh")
    assert traces["train"] == 4                     # each arm's new model: 2 sizes each
    for arm in ("none", "light"):
        assert _same(_weights(reused / arm / "checkpoints/last.keras"),
                     _weights(fresh / arm / "checkpoints/last.keras")), arm
        with np.load(reused / f"predictions/{arm}.npz") as a, \
                np.load(fresh / f"predictions/{arm}.npz") as b:
            assert a.files == b.files and all((a[k] == b[k]).all() for k in a.files), arm
    with np.load(reused / "predictions/none.npz") as a, \
            np.load(reused / "predictions/light.npz") as b:
        assert not (a["final"] == b["final"]).all()     # the arms trained differently
