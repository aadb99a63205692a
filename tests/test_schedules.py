"""Schedules: cyclic values at hand-computed steps, phase-aligned cycles that end at the
minimum, one-cycle and cosine, the config's schedule section and its factory, plots,
serialisation; the LR range test and its suggestion on synthetic and real loss curves."""

from __future__ import annotations

import numpy as np
import pytest

from augmine.core.errors import AugmineError
from augmine.model.schedule_plots import lr_values, plot_lr_schedule
from augmine.model.schedules import (CyclicLR, PhaseCyclicLR, PiecewiseLinearLR, cyclic_lr_value,
                                     phase_cycle_segments, phase_cycles)
from augmine.runs import factories
from augmine.runs.config import load_config, SCHEDULE_KEYS, SCHEDULE_MODES, ScheduleConfig
from augmine.train.lrfind import lr_range_test, print_progress, smooth_losses, suggest_lr_range

PNG = b"\x89PNG\r\n\x1a\n"


def create_schedule(spec: dict, phases=None):
    """The schedule a config's ``schedule:`` section ``spec`` gives for ``phases`` (step
    counts or (steps_per_epoch, epochs) pairs), read as training reads it: validated by
    :func:`load_config`, built by the factory."""
    cfg = load_config({"phases": [{"size": 32, "epochs": 1}] * max(1, len(phases or ())),
                       "schedule": spec}, check_recipes=False)
    return factories.create_schedule(cfg.schedule, phases)

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


def test_schedule_defaults_live_on_the_config_schema():
    """An empty schedule section resolves to the reference run's CyclicLR; the resolved
    section holds every key its mode takes (what a run's config.yaml records), and loading
    it again gives the same section."""
    cfg = ScheduleConfig()
    assert cfg.options() == {"mode": "triangular", "min_lr": 0.001, "max_lr": 0.05,
                             "half_cycle": 2000, "gamma": 0.99994}
    assert ScheduleConfig.model_validate(cfg.options()) == cfg
    for mode in SCHEDULE_MODES:
        resolved = ScheduleConfig(mode=mode)
        assert set(resolved.options()) - {"mode"} <= set(SCHEDULE_KEYS[mode])
        assert ScheduleConfig.model_validate(resolved.options()) == resolved
    one = ScheduleConfig(mode="one_cycle", max_lr=0.1, warmup_steps=5)
    assert (one.min_lr, one.final_lr, one.warmup_fraction, one.anneal) == \
        (pytest.approx(0.004), pytest.approx(4e-6), None, "cos")
    assert ScheduleConfig(mode="cosine", max_lr=0.1).min_lr == pytest.approx(0.001)
    auto = ScheduleConfig(half_cycle="auto")
    assert (auto.cycles_per_phase, ScheduleConfig(half_cycle="auto", cycle_epochs=2)
            .cycles_per_phase) == (1, None)


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

    opt = keras.optimizers.SGD(CyclicLR(0.001, 0.05, 10, "triangular", 1.0), momentum=0.9)
    opt.iterations.assign(5)
    assert float(opt.learning_rate) == pytest.approx(0.0255)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="mode"):
        CyclicLR(0.001, 0.05, 10, "cosine", 1.0)
    with pytest.raises(ValueError, match="min_lr"):
        CyclicLR(0.1, 0.01, 10, "triangular", 1.0)


def test_suggestion_lies_where_the_loss_falls():
    lrs = np.geomspace(1e-5, 1.0, 100)
    x = np.log10(lrs)
    # flat until 1e-3, falls until 1e-1, then diverges
    loss = np.where(x < -3, 2.3, np.where(x < -1, 2.3 - 0.8 * (x + 3), 0.7 + 5 * (x + 1) ** 2))
    s = suggest_lr_range(lrs, loss, smoothing=0.5)
    assert 1e-4 <= s["min_lr"] < s["max_lr"] <= 0.2
    assert 1e-3 <= s["max_lr"]


@pytest.mark.slow
@pytest.mark.backend
def test_lr_range_test_writes_a_plot(tmp_path):
    from augmine.model.sources import build_densenet

    rng = np.random.default_rng(0)
    x = rng.random((64, 16, 16, 3), dtype=np.float32)
    y = (x[:, :, :, 0].mean(axis=(1, 2)) > 0.5).astype(np.int32)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    seen = []
    result = lr_range_test(build_densenet(2, width=8, growth_rate=4), batches,
                           out_png=tmp_path / "lr.png", steps=12, start_lr=1e-4, end_lr=1.0,
                           on_step=lambda step, lr, loss: seen.append((step, lr, loss)))
    assert (tmp_path / "lr.png").read_bytes()[:8] == PNG
    assert [s for s, _, _ in seen] == list(range(len(result["lrs"])))
    assert [lr for _, lr, _ in seen] == pytest.approx(result["lrs"])
    assert 5 <= len(result["lrs"]) <= 12
    assert result["lrs"] == sorted(result["lrs"])
    assert result["lrs"][0] == pytest.approx(1e-4)
    assert 0 < result["min_lr"] < result["max_lr"]


# --------------------------------------------------------------------------- phase-aligned cycles

def test_phase_cycles_cover_each_phase_exactly():
    assert phase_cycles([100, 60]) == [(0, 100), (100, 60)]
    assert phase_cycles([100, 60], cycles_per_phase=[2, 3]) == \
        [(0, 50), (50, 50), (100, 20), (120, 20), (140, 20)]
    # cycle_epochs: 4 epochs / 2 -> 2 cycles, 6 / 2 -> 3, 12 / 2 -> 6, each whole epochs
    cycles = phase_cycles([(10, 4), (10, 6), (10, 12)], cycle_epochs=2)
    assert len(cycles) == 11 and all(length == 20 for _, length in cycles)
    # 5 epochs in 2 cycles: whole epochs (3 + 2), not 25 + 25 steps
    assert phase_cycles([(10, 5)], cycles_per_phase=2) == [(0, 30), (30, 20)]


def test_reference_schedule_ends_mid_cycle_but_auto_ends_at_min():
    """The issue's GPU run: 4/6/12 epochs of 313 steps, min 0.001, max 0.05."""
    phases = [(313, 4), (313, 6), (313, 12)]
    ends = np.cumsum([s * e for s, e in phases])
    ref = create_schedule({"mode": "triangular", "min_lr": 0.001, "max_lr": 0.05,
                           "half_cycle": 2000}, phases)
    assert isinstance(ref, CyclicLR)
    assert float(ref(ends[-1])) > 0.02  # the reference run ended at ~0.027, mid-cycle
    auto = create_schedule({"mode": "triangular", "min_lr": 0.001, "max_lr": 0.05,
                            "half_cycle": "auto", "cycle_epochs": 4}, phases)
    assert isinstance(auto, PhaseCyclicLR)
    lrs = lr_values(auto, int(ends[-1]) + 1)
    for end in ends:  # every phase ends (and the next starts) at the minimum
        assert lrs[end] == pytest.approx(0.001, rel=1e-5)
        assert lrs[end - 1] < 0.002
    for start, length in phase_cycles(phases, cycle_epochs=4):
        assert lrs[start + length // 2] == pytest.approx(0.05, rel=2e-3)  # odd lengths
    assert lrs.max() == pytest.approx(0.05, rel=1e-5) and lrs.min() >= 0.001 - 1e-9


@pytest.mark.parametrize("mode,gamma", [("triangular", 1.0), ("exp_range", 0.999)])
def test_phase_cyclic_matches_cyclic_for_regular_segments(mode, gamma):
    segs = [{"start": 2 * 50 * k, "length": 100, "min_lr": 0.001, "max_lr": 0.05,
             "gamma": gamma} for k in range(4)]
    steps = np.arange(0, 400)
    ours = lr_values(PhaseCyclicLR(segs), 400)
    ref = np.array([cyclic_lr_value(s, 0.001, 0.05, 50, mode, gamma) for s in steps])
    np.testing.assert_allclose(ours, ref, rtol=1e-4)


def test_triangular2_halves_each_cycle_over_the_run():
    segs = phase_cycle_segments([40, 40], 0.01, 0.09, "triangular2", 1.0, cycles_per_phase=2)
    assert [s["max_lr"] for s in segs] == pytest.approx([0.09, 0.05, 0.03, 0.02])
    lrs = lr_values(PhaseCyclicLR(segs), 80)
    assert [lrs[10], lrs[30], lrs[50], lrs[70]] == pytest.approx([0.09, 0.05, 0.03, 0.02],
                                                                 rel=1e-5)


def test_phase_cyclic_holds_min_after_the_run_and_takes_scalars():
    sched = PhaseCyclicLR([{"start": 0, "length": 10, "min_lr": 0.002, "max_lr": 0.02}])
    assert float(sched(5)) == pytest.approx(0.02)
    assert float(sched(10)) == pytest.approx(0.002)
    assert float(sched(1000)) == pytest.approx(0.002)
    assert sched.total_steps == 10


@pytest.mark.parametrize("sched", [
    PhaseCyclicLR([{"start": 0, "length": 30, "min_lr": 0.001, "max_lr": 0.04},
                   {"start": 30, "length": 50, "min_lr": 0.001, "max_lr": 0.02,
                    "gamma": 0.999}]),
    PiecewiseLinearLR([0, 10, 20, 50], [0.002, 0.05, 0.002, 1e-5]),
])
def test_new_schedules_serialise_and_drive_an_optimizer(sched):
    import keras

    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(sched))
    assert type(revived) is type(sched)
    np.testing.assert_allclose(lr_values(revived, 60), lr_values(sched, 60), rtol=1e-6)
    opt = keras.optimizers.SGD(sched, momentum=0.9)
    opt.iterations.assign(15)
    assert float(opt.learning_rate) == pytest.approx(float(sched(15)), rel=1e-6)
    # the vectorised evaluation agrees with one call per step
    vec = lr_values(sched, 60)
    for step in (0, 7, 15, 29, 30, 44, 59):
        assert vec[step] == pytest.approx(float(sched(step)), rel=1e-6)


# --------------------------------------------------------------------------- one-cycle, cosine

def test_one_cycle_cos_is_keras_cosine_decay_with_warmup():
    import keras

    sched = create_schedule({"mode": "one_cycle", "max_lr": 0.1, "min_lr": 0.004,
                             "final_lr": 1e-5, "warmup_fraction": 0.25}, [100, 100])
    assert isinstance(sched, keras.optimizers.schedules.CosineDecay)
    assert float(sched(0)) == pytest.approx(0.004, rel=1e-5)
    assert float(sched(50)) == pytest.approx(0.1, rel=1e-5)  # peak after 25% of 200 steps
    assert float(sched(125)) == pytest.approx((0.1 + 1e-5) / 2, rel=1e-3)  # halfway down
    assert float(sched(200)) == pytest.approx(1e-5, rel=1e-3)
    lrs = lr_values(sched, 201)
    assert np.all(np.diff(lrs[:51]) > 0) and np.all(np.diff(lrs[50:]) <= 1e-12)


def test_one_cycle_linear_is_smith_topin():
    sched = create_schedule({"mode": "one_cycle", "max_lr": 0.1, "min_lr": 0.01,
                             "final_lr": 1e-4, "anneal": "linear", "warmup_steps": 40}, [100])
    assert isinstance(sched, PiecewiseLinearLR)
    lrs = lr_values(sched, 101)
    assert lrs[[0, 20, 40, 60, 80, 100]] == pytest.approx([0.01, 0.055, 0.1, 0.055, 0.01, 1e-4],
                                                          rel=1e-5)


def test_cosine_with_warmup_epochs():
    sched = create_schedule({"mode": "cosine", "min_lr": 1e-4, "max_lr": 0.1,
                             "warmup_epochs": 2}, [(10, 5), (10, 5)])
    lrs = lr_values(sched, 101)
    assert lrs[0] == pytest.approx(1e-4, rel=1e-4)
    assert lrs[20] == pytest.approx(0.1, rel=1e-5)  # warm-up: 2 epochs of 10 steps
    assert lrs[100] == pytest.approx(1e-4, rel=1e-4)
    no_warm = create_schedule({"mode": "cosine", "min_lr": 1e-3, "max_lr": 0.1}, [50])
    assert float(no_warm(0)) == pytest.approx(0.1) and float(no_warm(50)) == pytest.approx(1e-3)


@pytest.mark.parametrize("spec", [
    {"mode": "cosine", "min_lr": 1e-4, "max_lr": 0.1, "warmup_steps": 13},
    {"mode": "cosine", "min_lr": 1e-4, "max_lr": 0.1},
    {"mode": "one_cycle", "max_lr": 0.3},
])
def test_lr_values_of_cosine_decay_match_keras(spec):
    sched = create_schedule(spec, [97])
    vec = lr_values(sched, 120)
    for step in (0, 5, 12, 13, 14, 29, 50, 96, 97, 119):
        assert vec[step] == pytest.approx(float(sched(step)), rel=1e-4)  # Keras: float32


def test_lr_schedule_plot(tmp_path):
    sched = create_schedule({"half_cycle": "auto", "cycles_per_phase": 2}, [60, 60, 80])
    lrs = lr_values(sched, 200)
    out = plot_lr_schedule(lrs, np.cumsum([60, 60]), tmp_path / "run" / "lr_schedule.png")
    assert out.read_bytes()[:8] == PNG
    assert [p.name for p in out.parent.iterdir()] == ["lr_schedule.png"]  # no temp files left


@pytest.mark.parametrize("spec,phases,match", [
    # the schema (load_config), before anything trains
    ({"mode": "cosine_restarts"}, [10], "schedule.mode: 'cosine_restarts' is unknown"),
    ({"max_lr": 0.1, "half_cylce": 100}, None, "unknown key 'half_cylce'; did you mean"),
    ({"half_cycle": "2000"}, None, "use a step count or 'auto'"),
    ({"half_cycle": 100, "cycles_per_phase": 2}, [10], "need half_cycle: auto"),
    ({"half_cycle": "auto", "cycles_per_phase": [1, 2]}, [100], "2 entries for 1 phases"),
    ({"min_lr": 0.1, "max_lr": 0.01}, None, "min_lr 0.1 is above max_lr 0.01"),
    ({"min_lr": 0.1}, None, r"min_lr 0.1 is above max_lr 0.05 \(the default\)"),
    ({"mode": "one_cycle", "min_lr": 0.01, "final_lr": 0.1}, [100],
     "final_lr 0.1 is above min_lr 0.01"),
    ({"mode": "one_cycle", "anneal": "exp"}, [100], "schedule.anneal: 'exp' is unknown"),
    ({"mode": "cosine", "gamma": 0.9}, [100], "'gamma' does not apply to mode 'cosine'"),
    ({"max_lr": "fast"}, None, "schedule.max_lr: 'fast' is not valid"),
    ({"half_cycle": "auto", "cycles_per_phase": "two"}, [100], "not a valid cycle count"),
    ({"mode": "exp_range", "gamma": 1.5}, None, "gamma is in"),
    ({"mode": "cosine", "warmup_steps": 2.5}, [100], "2.5 is not a valid step count"),
    ({"mode": "one_cycle", "warmup_steps": 5, "warmup_fraction": 0.1}, [100], "not several"),
    # the factory: the spec against the phases
    ({"half_cycle": "auto"}, None, "needs the phases"),
    ({"half_cycle": "auto", "cycle_epochs": 2}, [100], "cycle_epochs needs"),
    ({"half_cycle": "auto", "cycles_per_phase": 60}, [100], "cannot hold 60 cycles"),
    ({"mode": "one_cycle"}, None, "needs the phases"),
    ({"mode": "one_cycle", "warmup_steps": 100}, [100], "shorter than the run"),
    ({"mode": "one_cycle", "anneal": "linear", "warmup_fraction": 0.6}, [100],
     "linear one_cycle needs"),
    ({"mode": "cosine", "warmup_epochs": 1}, [100], "warmup_epochs needs"),
])
def test_bad_specs_are_one_line_errors(spec, phases, match):
    with pytest.raises(AugmineError, match=match) as info:
        create_schedule(spec, phases)
    assert "\n" not in str(info.value) and str(info.value).startswith("config: schedule")


def test_default_spec_is_the_reference_run():
    sched = factories.create_schedule(ScheduleConfig())
    assert isinstance(sched, CyclicLR)
    assert sched.get_config() == CyclicLR(0.001, 0.05, 2000, "triangular", 0.99994).get_config()
    # today's config schedule dicts (CyclicLR(**cfg.schedule)) give the same schedule
    for cfg in ({"mode": "triangular", "min_lr": 0.005, "max_lr": 0.1, "half_cycle": 60},
                {"mode": "exp_range", "min_lr": 0.001, "max_lr": 0.05, "half_cycle": 2000,
                 "gamma": 0.9999},
                {"mode": "triangular2", "min_lr": 0.001, "max_lr": 0.05, "half_cycle": 200,
                 "gamma": 0.5}):
        assert create_schedule(cfg, [500]).get_config() == \
            CyclicLR(**{"gamma": 0.99994, **cfg}).get_config()


# --------------------------------------------------------------------------- LR suggestion

LRS = np.geomspace(1e-5, 1.0, 150)
X = np.log10(LRS)


def _falling(lr):
    """True where the synthetic curves below fall: 1e-3 .. 5e-2."""
    return 1e-3 <= lr <= 5e-2


def _valley(noise_seed=0, noise=0.05):
    rng = np.random.default_rng(noise_seed)
    base = np.where(X < -3, 2.3, np.where(X < np.log10(5e-2), 2.3 - 1.0 * (X + 3),
                                          2.3 - 1.0 * (np.log10(5e-2) + 3)
                                          + 3.0 * (X - np.log10(5e-2)) ** 2))
    return base + rng.normal(0, noise, len(X))


def test_smoothing_is_bias_corrected():
    s = smooth_losses([2.0, 2.0, 2.0, 2.0], 0.9)
    np.testing.assert_allclose(s, 2.0)


def test_noisy_start_does_not_decide_the_suggestion():
    """The bug from the issue: a steep drop among the first noisy steps won over the real
    falling region (suggested 1.7e-05 .. 3.4e-05)."""
    loss = _valley()
    loss[:12] = [3.5, 2.2, 3.1, 2.0, 2.9, 2.1, 2.4, 2.2, 2.5, 2.3, 2.35, 2.3]
    s = suggest_lr_range(LRS, loss)
    assert _falling(s["max_lr"]), s
    assert s["min_lr"] == pytest.approx(s["max_lr"] / 10)
    assert s["min_lr"] >= 1e-4
    assert s["warning"] is None


def test_clear_valley():
    s = suggest_lr_range(LRS, _valley(noise=0.01))
    assert _falling(s["max_lr"]) and s["max_lr"] <= s["lr_at_min_loss"]
    assert 2e-2 <= s["lr_at_min_loss"] <= 0.2


def test_divergence_is_cut():
    loss = _valley()
    loss[X > -0.8] = np.linspace(5, 60, int((X > -0.8).sum()))  # explodes past 0.16
    loss[-5:] = np.nan
    s = suggest_lr_range(LRS, loss)
    assert _falling(s["max_lr"])
    assert s["used_steps"] < int((X <= -0.8).sum()) + 5
    assert np.all(np.isfinite(s["smoothed"]))


def test_a_loss_that_never_falls_gets_a_warning():
    rng = np.random.default_rng(1)
    s = suggest_lr_range(LRS, 2.3 + rng.normal(0, 0.05, len(LRS)))
    assert s["warning"] and "never fell" in s["warning"]


def test_too_few_losses():
    with pytest.raises(ValueError, match="at least 5 finite"):
        suggest_lr_range([1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.9, 1.8, 1.7])
    with pytest.raises(ValueError, match="at least 5 finite"):
        suggest_lr_range(LRS[:10], [2.0, 1.9, np.inf] + [2.0] * 7)


def test_progress_lines_when_not_a_terminal():
    import io

    out = io.StringIO()
    hook = print_progress(50, stream=out)
    for step in range(50):
        hook(step, 1e-5 * 1.2 ** step, 2.3)
    lines = out.getvalue().splitlines()
    assert len(lines) == 11 and "\r" not in out.getvalue()  # step 1, then every 5 steps
    assert lines[-1].startswith("lr-find step 50/50")


@pytest.mark.slow
def test_lr_range_test_on_the_real_sample(real_index, tmp_path):
    """A tiny DenseNet on real images: the suggested max_lr lies where the loss falls."""
    from augmine.model.sources import build_densenet
    from augmine.feed.feeds import train_dataset
    from augmine.core.runtime import import_keras

    import_keras().utils.set_random_seed(0)
    model = build_densenet(real_index.num_classes, width=8, growth_rate=4)
    ds = train_dataset(real_index, "light", 16, 64, seed=0, workers=0)
    result = lr_range_test(model, ds, out_png=tmp_path / "lr.png", steps=100)
    smooth = np.asarray(result["smoothed"])
    lrs = np.asarray(result["lrs"])[:len(smooth)]
    at_max = smooth[np.searchsorted(lrs, result["max_lr"])]
    skip = result["skipped_steps"]
    assert at_max < smooth[0] and at_max < smooth[skip] - 0.05, result
    assert result["max_lr"] > 1e-4 and result["warning"] is None


@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.parametrize("spec", [{"half_cycle": "auto", "cycles_per_phase": 2},
                                  {"mode": "one_cycle", "anneal": "linear", "max_lr": 0.1}])
def test_schedules_work_inside_fit(spec):
    """Compiled train steps (tf.function / jax.jit) accept the schedules."""
    import keras

    sched = create_schedule(spec, [8, 8])
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(sched, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.random((40, 4), dtype=np.float32), rng.integers(0, 3, 40), batch_size=8,
              epochs=2, verbose=0)
    assert int(model.optimizer.iterations) == 10
    assert float(model.optimizer.learning_rate) == pytest.approx(lr_values(sched, 11)[10],
                                                                 rel=1e-6)


# A value per key that differs from its default, and the phases they are tried on.
KEY_VALUES = {"min_lr": 0.003, "max_lr": 0.04, "half_cycle": 7, "cycles_per_phase": 2,
              "cycle_epochs": 1, "gamma": 0.9, "final_lr": 1e-6, "warmup_fraction": 0.1,
              "warmup_steps": 5, "warmup_epochs": 1, "anneal": "linear"}
KEY_PHASES = [(10, 4)]


@pytest.mark.parametrize("mode", SCHEDULE_MODES)
def test_every_schedule_key_is_validated_and_used(mode):
    """The config's schedule schema is the only one: for every mode, a key of another mode (or
    none) is a config error naming the mode, and every key the mode takes changes the
    schedule the factory builds (exp_range's gamma only there: the other cyclic modes accept
    and ignore it, as CyclicLR does)."""
    assert set(KEY_VALUES) == set(ScheduleConfig.model_fields) - {"mode"}
    for key in sorted(set(KEY_VALUES) - set(SCHEDULE_KEYS[mode])) + ["nope"]:
        with pytest.raises(AugmineError, match=f"schedule: .*{key}"):
            create_schedule({"mode": mode, key: KEY_VALUES.get(key, 1)}, KEY_PHASES)
    for key in SCHEDULE_KEYS[mode]:
        base = {"mode": mode}
        if key in ("cycles_per_phase", "cycle_epochs"):
            base["half_cycle"] = "auto"
        plain = lr_values(create_schedule(base, KEY_PHASES), 41)
        changed = lr_values(create_schedule({**base, key: KEY_VALUES[key]}, KEY_PHASES), 41)
        if key == "gamma" and mode != "exp_range":
            np.testing.assert_allclose(changed, plain)
        else:
            assert not np.allclose(changed, plain), (mode, key)


@pytest.mark.slow
def test_config_and_schedule_modules_import_no_keras():
    """Reading configs and cycle arithmetic need no Keras; the schedule classes bring it."""
    import subprocess
    import sys

    code = ("import sys; import augmine.model.schedules, augmine.runs.factories, "
            "augmine.runs.config; print('keras' in sys.modules, end=' '); "
            "from augmine.model.schedules import CyclicLR; print('keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "True"]
