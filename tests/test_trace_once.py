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
