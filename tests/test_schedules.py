"""Cyclic learning rate values at hand-computed steps, serialisation, the LR range test."""

from __future__ import annotations

import numpy as np
import pytest

from augmine.schedules import CyclicLR, cyclic_lr_value, lr_range_test, suggest_lr_range

# (mode, step, expected) for min 0.001, max 0.05, half_cycle 2000 (exp_range gamma 0.9999).
# triangular: 0 -> min, 1000 -> halfway, 2000 -> max, 4000 -> min again.
# triangular2 in cycle 2 (steps 4000-8000): amplitude halved, so 6000 -> 0.001 + 0.049/2.
# exp_range: 2000 -> 0.001 + 0.049 * 0.9999**2000.
CASES = [
    ("triangular", 0, 0.001), ("triangular", 1000, 0.0255), ("triangular", 2000, 0.05),
    ("triangular", 3000, 0.0255), ("triangular", 4000, 0.001), ("triangular", 5000, 0.0255),
    ("triangular", 6000, 0.05),
    ("triangular2", 2000, 0.05), ("triangular2", 5000, 0.001 + 0.049 * 0.5 * 0.5),
    ("triangular2", 6000, 0.0255), ("triangular2", 10000, 0.001 + 0.049 * 0.25),
    ("triangular2", 8000, 0.001),
    ("exp_range", 0, 0.001), ("exp_range", 1000, 0.001 + 0.049 * 0.5 * 0.9999 ** 1000),
    ("exp_range", 2000, 0.001 + 0.049 * 0.9999 ** 2000),
    ("exp_range", 6000, 0.001 + 0.049 * 0.9999 ** 6000),
]


@pytest.mark.parametrize("mode,step,expected", CASES)
def test_schedule_values_at_hand_computed_steps(mode, step, expected):
    sched = CyclicLR(0.001, 0.05, 2000, mode=mode, gamma=0.9999)
    assert float(sched(step)) == pytest.approx(expected, rel=1e-5)
    assert cyclic_lr_value(step, 0.001, 0.05, 2000, mode, 0.9999) == pytest.approx(expected,
                                                                                   rel=1e-9)


def test_defaults_are_the_reference_run():
    sched = CyclicLR()
    assert (sched.min_lr, sched.max_lr, sched.half_cycle, sched.mode) == \
        (0.001, 0.05, 2000, "triangular")


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_config_round_trip(mode):
    import keras

    sched = CyclicLR(0.002, 0.03, 500, mode=mode, gamma=0.999)
    again = CyclicLR.from_config(sched.get_config())
    blob = keras.saving.serialize_keras_object(sched)
    revived = keras.saving.deserialize_keras_object(blob)
    assert isinstance(revived, CyclicLR)
    for step in (0, 123, 500, 777, 1500):
        assert float(again(step)) == pytest.approx(float(sched(step)))
        assert float(revived(step)) == pytest.approx(float(sched(step)))


def test_optimizer_uses_schedule_per_step():
    import keras

    opt = keras.optimizers.SGD(CyclicLR(0.001, 0.05, 10), momentum=0.9)
    opt.iterations.assign(5)
    assert float(opt.learning_rate) == pytest.approx(0.0255)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="mode"):
        CyclicLR(mode="cosine")
    with pytest.raises(ValueError, match="min_lr"):
        CyclicLR(0.1, 0.01)


def test_suggestion_lies_where_the_loss_falls():
    lrs = np.geomspace(1e-5, 1.0, 100)
    x = np.log10(lrs)
    # flat until 1e-3, falls until 1e-1, then diverges
    loss = np.where(x < -3, 2.3, np.where(x < -1, 2.3 - 0.8 * (x + 3), 0.7 + 5 * (x + 1) ** 2))
    s = suggest_lr_range(lrs, loss, smoothing=0.5)
    assert 1e-4 <= s["min_lr"] < s["max_lr"] <= 0.2
    assert 1e-3 <= s["max_lr"]


def test_lr_range_test_writes_a_plot(tmp_path):
    from augmine.model import build_densenet

    rng = np.random.default_rng(0)
    x = rng.random((64, 16, 16, 3), dtype=np.float32)
    y = (x[:, :, :, 0].mean(axis=(1, 2)) > 0.5).astype(np.int32)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    result = lr_range_test(build_densenet(2, width=8, growth_rate=4), batches,
                           out_png=tmp_path / "lr.png", steps=12, start_lr=1e-4, end_lr=1.0)
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 5 <= len(result["lrs"]) <= 12
    assert result["lrs"] == sorted(result["lrs"])
    assert result["lrs"][0] == pytest.approx(1e-4)
    assert 0 < result["min_lr"] < result["max_lr"]
