"""Phased training: configs, run folder, reports, extra epochs, resume after SIGKILL, strategy."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from support import TINY, copy_run, subprocess_env, write_config

from augmine.cli import cli
from augmine.core.errors import AugmineError
from augmine.runs.factories import load_checkpoint
from augmine.runs.config import load_config
from augmine.runs.rundir import HISTORY_COLUMNS, RunDir
from augmine.train.phases import train_extra_epochs, train_run

REPO = Path(__file__).resolve().parents[1]


def read_history(run) -> list[dict]:
    return RunDir(run).read_history()


def read_state(run):
    return RunDir(run).read_state()

# --------------------------------------------------------------------------- configs

@pytest.mark.parametrize("change,message", [
    ({"batchsize": 32}, "unknown key 'batchsize'; did you mean 'batch_size'?"),
    ({"phases": [{"size": 16, "epoch": 2, "recipe": "none"}]},
     "unknown key 'epoch'; did you mean 'epochs'?"),
    ({"schedule": {"max_rl": 0.1}}, "did you mean 'max_lr'?"),
    ({"phases": [{"size": 16, "epochs": -1, "recipe": "none"}]}, "phases[1].epochs: -1"),
    ({"phases": [{"size": 16, "epochs": 0, "recipe": "none"}]}, "phases[1].epochs: 0"),
    ({"phases": [{"size": 16, "epochs": 1, "recipe": "none", "presize": "maybe"}]},
     "phases[1].presize"),
    ({"model": {"blocks": 5}, "phases": [{"size": 8, "epochs": 1, "recipe": "none"}]},
     "needs >= 16 px"),                       # 5 blocks: 4 halvings of the side
    ({"phases": [{"size": "big", "epochs": 1, "recipe": "none"}]}, "phases[1].size"),
    ({"phases": [{"size": 16, "epochs": 1, "recipe": "no-such-recipe.yaml"}]},
     "recipe 'no-such-recipe.yaml' not found"),
    ({"schedule": {"mode": "triangle"}}, "did you mean 'triangular'?"),
    ({"optimizer": {"name": "sgd", "momentun": 0.9}}, "did you mean 'momentum'?"),
    ({"phases": []}, "'phases' is missing or empty"),
    ({"schedule": {"mode": "one-cycle"}}, "did you mean 'one_cycle'?"),
    ({"schedule": {"mode": "cosine", "half_cycle": 20}},
     "schedule: 'half_cycle' does not apply to mode 'cosine'"),
    ({"schedule": {"half_cycle": "often"}}, "schedule.half_cycle: 'often' is not valid"),
    ({"schedule": {"half_cycle": 20, "cycle_epochs": 2}}, "need half_cycle: auto"),
    ({"schedule": {"half_cycle": "auto", "cycles_per_phase": [1, 2]}},
     "schedule.cycles_per_phase: 2 entries for 3 phases"),
    ({"schedule": {"mode": "one_cycle", "anneal": "cosine"}}, "schedule.anneal: 'cosine'"),
])
def test_bad_configs_fail_with_one_line_before_training(tmp_path, synth_root, change, message):
    path = write_config(tmp_path, **change)
    with pytest.raises(AugmineError) as err:
        load_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    # the CLI prints it as one line and creates no run folder
    out = CliRunner().invoke(cli, ["train", str(path), "--data", str(synth_root),
                                   "--run-dir", str(tmp_path / "run")])
    assert out.exit_code != 0
    assert out.output.startswith("Error: ") and out.output.count("\n") == 1, out.output
    assert "Traceback" not in out.output
    assert not (tmp_path / "run").exists()


def test_recipes_resolve_next_to_the_config_first(tmp_path):
    (tmp_path / "mine.yaml").write_text("name: mine\ntransforms: []\n")
    cfg = load_config(write_config(tmp_path, phases=[
        {"size": 16, "epochs": 1, "recipe": "mine.yaml"},
        {"size": 32, "epochs": 2, "recipe": "none"}]))
    assert cfg.phases[0].recipe == str((tmp_path / "mine.yaml").resolve())
    assert cfg.phases[1].recipe == str((REPO / "recipes" / "none.yaml").resolve())
    assert cfg.total_epochs == 3
    assert cfg.optimizer.options() == {"name": "sgd", "momentum": 0.9, "nesterov": True}


def test_shipped_configs_are_valid():
    ref = load_config(REPO / "recipes" / "tiny-imagenet-densenet.yaml", check_recipes=False)
    assert [p.size for p in ref.phases] == [16, 32, 64]
    assert ref.total_epochs == 95 and ref.batch_size == 320
    assert ref.schedule.options() == {"mode": "triangular", "min_lr": 0.001, "max_lr": 0.05,
                                      "half_cycle": 2000, "gamma": 0.99994}   # resolved
    small = load_config(REPO / "recipes" / "cpu-small.yaml", check_recipes=False)
    assert small.model.width <= 16
    fast = load_config(REPO / "recipes" / "tiny-imagenet-fast.yaml")
    assert fast.model == ref.model and [p.size for p in fast.phases] == [16, 32, 64]
    assert fast.total_epochs <= 60 and fast.schedule.half_cycle == "auto"
    # at Tiny-ImageNet's 100k images / 320 a phase-aligned schedule ends every phase at min
    from augmine.model.schedule_plots import lr_values
    from augmine.runs.factories import create_schedule

    steps = [(313, p.epochs) for p in fast.phases]
    lrs = lr_values(create_schedule(fast.schedule, steps), 313 * 60 + 1)
    for end in np.cumsum([s * e for s, e in steps]):
        assert lrs[end] == pytest.approx(0.001)
    assert "UNMEASURED" in (REPO / "recipes" / "tiny-imagenet-fast.yaml").read_text()


def test_a_schedule_that_does_not_fit_the_phases_fails_before_the_run_folder(tmp_path,
                                                                           synth_root):
    # 13 steps per epoch cannot hold 20 cycles of >= 2 steps: known only with the dataset
    path = write_config(tmp_path, schedule={"half_cycle": "auto", "cycles_per_phase": 20})
    out = CliRunner().invoke(cli, ["train", str(path), "--data", str(synth_root),
                                   "--run-dir", str(tmp_path / "run")])
    assert out.exit_code != 0 and out.output.count("\n") == 1, out.output
    assert f"Error: {path}: schedule: phase 1: 13 steps cannot hold 20 cycles" in out.output
    assert "(phases: 1 epochs x 13 steps" in out.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("schedule", [
    {"half_cycle": "auto", "min_lr": 0.01, "max_lr": 0.1},
    {"mode": "one_cycle", "max_lr": 0.1, "min_lr": 0.01, "final_lr": 0.001,
     "warmup_epochs": 1},
])
def test_phase_aligned_schedules_end_where_they_should(tmp_path, synth_root, schedule):
    """Cycles aligned to the phases end every phase at min_lr (and peak mid-phase); the
    one-cycle run ends at final_lr."""
    phases = [{"size": 16, "epochs": 2, "recipe": "none"},
              {"size": 32, "epochs": 2, "recipe": "none"}]
    path = write_config(tmp_path, schedule=schedule, phases=phases)
    result = train_run(path, synth_root, tmp_path / "run", progress=False)
    lrs = [float(r["lr"]) for r in read_history(result.run_dir)]
    assert len(lrs) == 4 and result.state.step == 4 * 13
    if schedule.get("half_cycle") == "auto":
        assert lrs[1] == pytest.approx(0.01) and lrs[3] == pytest.approx(0.01)  # phase ends
        assert lrs[0] == pytest.approx(0.1) and lrs[2] == pytest.approx(0.1)    # mid-phase
    else:
        assert lrs[0] == pytest.approx(0.1, rel=1e-4)          # warm-up is one epoch
        assert lrs[3] == pytest.approx(0.001, rel=1e-4)        # run ends at final_lr
        assert lrs[1] > lrs[2] > lrs[3]


@pytest.mark.slow
@pytest.mark.backend
def test_a_training_command_reads_each_recipe_file_once(tmp_path, synth_root, monkeypatch):
    """Two phases on one recipe (the second at strength 0.5) and another for mining: each
    file is parsed and validated once, when the config loads; the feeds train on that. The
    command draws the run's learning-rate plot when its training is done."""
    from augmine.augment import recipes

    reads, parse = [], recipes._yaml_load
    monkeypatch.setattr(recipes, "_yaml_load",
                        lambda text, source: reads.append(Path(source).name) or parse(text, source))
    phases = [{"size": 16, "epochs": 1, "recipe": "light"},
              {"size": 32, "epochs": 1, "recipe": "light", "strength": 0.5}]
    path = write_config(tmp_path, phases=phases, mining={"recipe": "tiny-imagenet-14"})
    res = CliRunner().invoke(cli, ["train", str(path), "--data", str(synth_root), "--run-dir",
                                   str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert read_state(tmp_path / "run").reports == ["phase-1", "phase-2"]
    assert sorted(reads) == ["light.yaml", "tiny-imagenet-14.yaml"]
    png = RunDir(tmp_path / "run").lr_schedule_path
    assert f"schedule  {png}" in res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.mark.backend
def test_an_epoch_flushes_only_its_commit_point(tmp_path, synth_root, monkeypatch):
    """Every epoch's state.json is flushed to disk (os.fsync), and nothing else an epoch or
    a phase writes: last.keras, the best links, the history row and the report are renamed
    into place before it, so state.json's flush commits them (docs/reliability.md)."""
    import os
    import re

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the flushed files")
    flushed, fsync = [], os.fsync

    def named_fsync(fd):
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).name     # .<target>.<8 chars><suffix>
        flushed.append(re.sub(r"^\.(.+)\.[a-z0-9_]{8}(\.\w+)?$", r"\1", name))
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", named_fsync)
    path = write_config(tmp_path, phases=[{"size": 16, "epochs": 2, "recipe": "none"},
                                          {"size": 32, "epochs": 1, "recipe": "none"}])
    result = train_run(path, synth_root, tmp_path / "run", progress=False)
    assert result.state.epochs_done == 3 and result.run.checkpoint("best").is_file()
    assert set(flushed) == {"config.yaml", "state.json"}, flushed
    # one a start, one an epoch, one a phase's end (report, next phase), one at the end
    assert flushed.count("state.json") == 1 + 3 + 1 + 1


# --------------------------------------------------------------------------- a trained_run run

@pytest.mark.slow
@pytest.mark.backend
def test_tiny_model_trained_one_epoch_per_phase_lowers_its_loss(trained_run):
    rows = read_history(trained_run.run_dir)
    assert [r["stage"] for r in rows] == ["phase-1", "phase-2", "phase-3"]
    assert [int(r["size"]) for r in rows] == [16, 32, 64]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert tuple(rows[0]) == HISTORY_COLUMNS
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < losses[0], losses
    assert all(0.0 <= float(r["val_accuracy"]) <= 1.0 and float(r["lr"]) > 0 for r in rows)
    state = read_state(trained_run.run_dir)
    assert state.status == "done" and state.epochs_done == 3
    assert state.step == 3 * 13            # 400 images / batch 32 -> 13 steps per epoch
    assert state.reports == ["phase-1", "phase-2", "phase-3"]
    for stage, row in zip(state.reports, rows, strict=True):
        report = json.loads((trained_run.run_dir / "reports" / stage / "report.json").read_text())
        assert report["stage"] == stage and report["kind"] == "phase"
        # built from the phase's last validation: the numbers history.csv has for it
        assert report["accuracy"] == pytest.approx(float(row["val_accuracy"]), abs=1e-6)
    cfg = yaml.safe_load((trained_run.run_dir / "config.yaml").read_text())
    assert Path(cfg["data"]).is_dir()
    assert [p["presize"] for p in cfg["phases"]] == [True, False, False]   # as configured


@pytest.mark.backend
def test_a_phase_report_follows_weights_a_callback_changes_after_the_last_epoch(
        tmp_path, synth_root, synth_index):
    """A callback of yours that sets other weights when the fit ends (as EarlyStopping's
    restore_best_weights does): the report is about the model as the phase ends, so it
    predicts again instead of reusing the last epoch's validation."""
    import keras

    class ZeroWeightsAtTheEnd(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            self.model.set_weights([np.zeros_like(w) for w in self.model.get_weights()])

    cfg = write_config(tmp_path, phases=[{"size": 16, "epochs": 1, "recipe": "none"}])
    result = train_run(cfg, synth_root, tmp_path / "run", progress=False,
                       extra_callbacks=[ZeroWeightsAtTheEnd()])
    report = json.loads((result.run_dir / "reports" / "phase-1" / "report.json").read_text())
    labels = np.asarray(synth_index.val.labels)
    # zero weights: every class scores the same, so class 0 is every image's guess
    probs = np.load(result.run_dir / "reports" / "phase-1" / "predictions.npz")["probs"]
    np.testing.assert_allclose(probs, 1 / synth_index.num_classes, rtol=1e-5)
    assert report["accuracy"] == pytest.approx(float(np.mean(labels == 0)))


@pytest.mark.slow
@pytest.mark.backend
def test_checkpoints_keep_the_optimizer_step(trained_run):
    model = load_checkpoint(trained_run.last_checkpoint)
    assert int(np.asarray(model.optimizer.iterations)) == 39
    assert trained_run.best_checkpoint.is_file()
    assert not list((trained_run.run_dir / "checkpoints").glob(".*"))   # no temp leftovers


@pytest.mark.slow
@pytest.mark.backend
def test_a_finished_run_is_not_overwritten(trained_run, synth_root):
    with pytest.raises(AugmineError, match="already holds a run"):
        train_run(TINY, synth_root, trained_run.run_dir, progress=False)


@pytest.mark.slow
@pytest.mark.backend
def test_evaluate_cli_prints_the_runs_own_numbers(trained_run):
    """The printed top-1/top-5 are those of the run's phase-3 report (same model, same val
    split, same size) and top-1 is history's last val_accuracy."""
    out = CliRunner().invoke(cli, ["evaluate", str(trained_run.run_dir), "--checkpoint", "last"])
    assert out.exit_code == 0, out.output
    assert "100 val images at 64 px" in out.output
    printed = {line.split()[0]: line.split()[1] for line in out.output.splitlines() if line}
    report = json.loads((trained_run.run_dir / "reports" / "phase-3" / "report.json").read_text())
    assert printed["top-1"] == f"{report['accuracy']:.2%}"
    assert printed["top-5"] == f"{report['top5_accuracy']:.2%}"
    assert float(printed["top-1"].rstrip("%")) / 100 == pytest.approx(
        float(read_history(trained_run.run_dir)[-1]["val_accuracy"]), abs=0.006)
    # (the loss is not compared: evaluation clips p at 1e-7 while Keras' val_loss on
    # TensorFlow uses the softmax's logits, unclipped; they differ for a model this weak)
    assert float(printed["loss"]) > 0
    bad = CliRunner().invoke(cli, ["evaluate", str(trained_run.run_dir / "nope")])
    assert bad.exit_code != 0 and bad.output.startswith("Error: ")


@pytest.mark.slow
@pytest.mark.backend
def test_evaluate_defaults_to_the_last_phases_best_at_its_size(trained_run):
    state = read_state(trained_run.run_dir)
    assert sorted(state.best_by_size, key=int) == ["16", "32", "64"]
    assert state.best_by_size["64"].stage == "phase-3"
    out = CliRunner().invoke(cli, ["evaluate", str(trained_run.run_dir)])
    assert out.exit_code == 0, out.output
    assert "best-64px.keras" in out.output and "100 val images at 64 px" in out.output
    out = CliRunner().invoke(cli, ["evaluate", str(trained_run.run_dir), "--size", "32"])
    assert "best-32px.keras" in out.output and "at 32 px" in out.output


@pytest.mark.slow
@pytest.mark.backend
def test_extra_epochs_continue_the_schedule_and_history(trained_run, synth_index, tmp_path):
    from augmine.analysis.plans import OversamplingPlan

    run = copy_run(trained_run.run_dir, tmp_path)
    plan = OversamplingPlan(np.r_[3.0, np.ones(9)], [0], list(synth_index.class_ids),
                            list(synth_index.class_names))
    model = train_extra_epochs(run, synth_index, 1, plan=plan, stage="round-1", progress=False)
    state = read_state(run)
    assert state.rounds["round-1"].done is True
    assert state.epochs_done == 4
    # the plan repeats class 0 three times: 480 samples -> 15 steps
    assert state.step == 39 + 15
    assert int(np.asarray(model.optimizer.iterations)) == 39 + 15
    rows = read_history(run)
    assert rows[-1]["stage"] == "round-1" and rows[-1]["epoch"] == "4"
    # a finished stage is not trained_run again
    train_extra_epochs(run, synth_index, 1, stage="round-1", progress=False)
    assert read_state(run).epochs_done == 4


@pytest.mark.slow
def test_lr_find_cli_shows_progress_and_its_suggestion_lands_where_the_loss_falls(
        tmp_path, synth_root):
    path = write_config(tmp_path)
    out = CliRunner().invoke(cli, ["lr-find", str(path), "--data", str(synth_root),
                                   "--out", str(tmp_path / "lr"), "--steps", "60",
                                   "--start-lr", "1e-4", "--end-lr", "10"])
    assert out.exit_code == 0, out.output
    assert "lr-find step 1/60" in out.output and "lr-find step 60/60" in out.output or \
        "lr-find step " in out.output and "diverg" not in out.output   # progress on stderr
    assert "suggested" in out.output and "warning" not in out.output
    assert (tmp_path / "lr" / "lr_find.png").stat().st_size > 1000
    r = json.loads((tmp_path / "lr" / "lr_find.json").read_text())
    assert 0 < r["min_lr"] < r["max_lr"] <= r["lr_at_min_loss"] and r["warning"] is None
    # where the suggested max_lr sits, the smoothed loss (as the plot shows it) is falling
    from augmine.train.lrfind import smooth_losses

    lrs, smooth = np.array(r["lrs"]), smooth_losses(r["losses"])
    i = int(np.argmin(abs(np.log(lrs) - np.log(r["max_lr"]))))
    assert smooth[min(i + 3, len(smooth) - 1)] < smooth[max(i - 3, 0)], (i, smooth.round(3))
    assert smooth[i] < smooth[r["skipped_steps"]]          # below where the test starts


# --------------------------------------------------------------------------- strategy

@pytest.mark.slow
@pytest.mark.tensorflow
def test_mirrored_strategy_over_two_logical_cpus(tmp_path, synth_root):
    path = write_config(tmp_path, strategy="mirrored",
                        phases=[{"size": 16, "epochs": 1, "recipe": "none"}])
    script = textwrap.dedent(f"""
        import json
        from augmine.core.runtime import import_tensorflow
        tf = import_tensorflow()
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from augmine.feed.tf_backend import mirrored_strategy
        from augmine.train.phases import train_run
        replicas = mirrored_strategy("mirrored").num_replicas_in_sync
        r = train_run({str(path)!r}, {str(synth_root)!r}, {str(tmp_path / 'run')!r},
                      progress=False)
        print("RESULT", json.dumps({{"replicas": replicas, "state": r.state.to_json()}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], env=subprocess_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    assert result["replicas"] == 2
    assert result["state"]["status"] == "done" and result["state"]["step"] == 13
    assert read_history(tmp_path / "run")[0]["stage"] == "phase-1"


# --------------------------------------------------------------------------- precision, progress, exact resume

@pytest.mark.backend      # auto: whether the backend sees a GPU
@pytest.mark.parametrize("setting,policy", [("false", "float32"), (False, "float32"),
                                            ("true", "mixed_float16"),
                                            ("mixed_bfloat16", "mixed_bfloat16"),
                                            ("float32", "float32"), ("auto", "float32")])
def test_mixed_precision_setting_names_the_keras_policy(tmp_path, setting, policy):
    from augmine.train.fit import precision_policy

    cfg = load_config(write_config(tmp_path, mixed_precision=setting))
    assert precision_policy(cfg.mixed_precision) == policy     # auto: no GPU here


def test_unknown_mixed_precision_is_one_line(tmp_path):
    path = write_config(tmp_path, mixed_precision="half")
    with pytest.raises(AugmineError, match=r"mixed_precision: 'half' is unknown; choose one of"):
        load_config(path)


@pytest.mark.slow
@pytest.mark.backend
def test_resume_mid_phase_continues_with_the_same_numbers(tmp_path, synth_root):
    """Killed after epoch 1 of a 3-epoch phase and resumed, a run ends with the same history
    rows as an uninterrupted one; piped output has one line per epoch, no progress bars."""
    import keras

    path = write_config(tmp_path, phases=[{"size": 16, "epochs": 3, "recipe": "none"}])
    out = CliRunner().invoke(cli, ["train", str(path), "--data", str(synth_root),
                                   "--run-dir", str(tmp_path / "whole")])
    assert out.exit_code == 0, out.output
    lines = [l for l in out.output.splitlines() if l.startswith("phase 1 (16 px, none) epoch ")]
    assert [l.split(":")[0] for l in lines] == [f"phase 1 (16 px, none) epoch {k}/3"
                                                for k in (1, 2, 3)]
    assert all(f"[run {k}/3 epochs, " in l and ", ETA " in l for k, l in enumerate(lines, 1))
    assert "phase 1 (16 px, none): epochs 1..3 of phase 1/1, run epochs 1..3 of 3" in out.output
    assert "\r" not in out.output and "\b" not in out.output

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(path, synth_root, tmp_path / "resumed", progress=False,
                  extra_callbacks=[Kill()])
    assert read_state(tmp_path / "resumed").epochs_done == 1
    train_run(None, None, tmp_path / "resumed", resume=True, progress=False)
    whole, resumed = read_history(tmp_path / "whole"), read_history(tmp_path / "resumed")
    assert len(whole) == len(resumed) == 3
    for a, b in zip(whole, resumed):
        for key in ("lr", "loss", "accuracy", "val_loss", "val_accuracy"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-6), \
                (key, whole, resumed)


# --------------------------------------------------------------------------- JAX, no TensorFlow

@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.jax
def test_jax_backend_trains_and_evaluates_through_the_cli_without_tensorflow(tmp_path,
                                                                            synth_root):
    """Under KERAS_BACKEND=jax with `import tensorflow` made to fail, and two CPU devices:
    the feeds are keras.utils.PyDataset with uint8 batches; keras.distribution.DataParallel
    places the model; `augmine train` (2 persistent worker processes), `evaluate`, `lr-find`
    and `mine round` all work; TensorFlow is never imported. (Once
    test_pipeline.py::test_keras_feed_under_jax_without_tensorflow.)"""
    path = write_config(tmp_path, strategy="mirrored", workers=2,
                        phases=[{"size": 16, "epochs": 1, "recipe": "none"},
                                {"size": 16, "epochs": 1, "recipe": "light.yaml"}],
                        mining={"k": 2, "epochs": 1})     # one size: fewer distinct compiles
    run = tmp_path / "run"
    script = textwrap.dedent(f"""
        import sys

        import keras
        from click.testing import CliRunner
        from augmine.cli import cli
        from augmine.train.fit import distribution

        assert keras.config.backend() == "jax"
        import numpy as np
        from augmine.data.dataset import load_index
        from augmine.feed.feeds import close_feed, eval_dataset, train_dataset

        index = load_index({str(synth_root)!r})
        train = train_dataset(index, "light", 16, 64, seed=0, workers=2)
        val = eval_dataset(index, 16, 32)
        assert isinstance(train, keras.utils.PyDataset) and len(train) == 7
        assert isinstance(val, keras.utils.PyDataset) and len(val) == 4
        x, y = train[0]
        assert x.dtype == np.uint8 and x.shape == (64, 16, 16, 3) and y.dtype == np.int32
        x, y = val[3]
        assert x.shape == (4, 16, 16, 3) and list(y) == list(index.val.labels[-4:])
        close_feed(train)
        with distribution("mirrored") as replicas:
            kind = type(keras.distribution.distribution()).__name__
        print("DEVICES", replicas, kind)
        for args in (["train", {str(path)!r}, "--data", {str(synth_root)!r},
                      "--run-dir", {str(run)!r}],
                     ["evaluate", {str(run)!r}],
                     ["lr-find", {str(path)!r}, "--data", {str(synth_root)!r},
                      "--out", {str(tmp_path / 'lr')!r}, "--steps", "6"],
                     ["mine", "round", {str(run)!r}, "--no-progress"]):
            res = CliRunner().invoke(cli, args)
            print(res.output)
            if res.exit_code != 0:
                import traceback
                traceback.print_exception(*res.exc_info)
                sys.exit(1)
        print("TF_IMPORTED", "tensorflow" in sys.modules)
    """)
    env = subprocess_env(block_tensorflow=True, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
                         XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    assert "DEVICES 2 DataParallel" in out.stdout
    assert "TF_IMPORTED False" in out.stdout
    assert "100 val images at 16 px" in out.stdout and "top-1" in out.stdout   # evaluate
    assert "suggested" in out.stdout and "round 1" in out.stdout
    state = read_state(run)
    assert state.status == "done" and state.rounds["round-1"].done
    assert [r["stage"] for r in read_history(run)] == ["phase-1", "phase-2", "round-1"]


# --------------------------------------------------------------------------- regularisation

def test_reference_config_has_every_regulariser_off():
    ref = load_config(REPO / "recipes" / "tiny-imagenet-densenet.yaml",
                      check_recipes=False)
    assert ref.optimizer.weight_decay == 0.0
    assert ref.regularization.options() == {"label_smoothing": 0.0, "mixup": 0.0, "cutmix": 0.0}
    assert not ref.regularization.soft_targets


@pytest.mark.backend
def test_weight_decay_is_decoupled(tmp_path):
    """AdamW with zero gradients: decoupled decay shrinks w by lr * wd * w exactly (coupled
    L2 would go through Adam's normalisation and move w by about lr instead)."""
    import keras

    from augmine.runs.factories import create_optimizer

    cfg = load_config(write_config(tmp_path, optimizer={"name": "adamw", "weight_decay": 0.5}))
    opt = create_optimizer(cfg.optimizer, 0.1)
    w = keras.Variable(np.full((3, 3), 4.0, "float32"))
    opt.apply_gradients([(keras.ops.zeros((3, 3)), w)])
    assert np.allclose(keras.ops.convert_to_numpy(w), 4.0 - 0.1 * 0.5 * 4.0)
    off = create_optimizer(load_config(write_config(tmp_path)).optimizer, 0.1)
    assert off.weight_decay is None


@pytest.mark.backend
def test_label_smoothing_raises_the_least_loss_and_takes_sparse_or_soft_labels():
    from augmine.model.sources import SoftTargetCrossentropy, soft_target_accuracy

    labels = np.array([0, 2, 1])
    onehot = np.eye(4, dtype="float32")[labels]
    near_perfect = np.clip(onehot, 1e-6, 1.0)
    plain, smooth = SoftTargetCrossentropy(0.0), SoftTargetCrossentropy(0.2)
    assert float(plain(labels, near_perfect)) < 1e-4
    target = 0.8 * onehot + 0.05                      # (1 - e) y + e / C
    least = float(-(target[0] * np.log(target[0])).sum())
    assert float(smooth(labels, target)) == pytest.approx(least, rel=1e-4)   # its minimum
    assert float(smooth(labels, near_perfect)) > least > 0.5
    assert float(smooth(onehot, target)) == pytest.approx(least, rel=1e-4)   # soft labels
    mixed = 0.7 * onehot + 0.3 * onehot[[1, 2, 0]]
    assert list(np.asarray(soft_target_accuracy(mixed, near_perfect))) == [1.0, 1.0, 1.0]
    assert list(np.asarray(soft_target_accuracy(labels, near_perfect[[1, 1, 1]]))) == \
        [0.0, 1.0, 0.0]     # all predict class 2: right only for the second


def _one_image_per_class(n=6, size=8):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3)).astype("uint8"), np.arange(n)


@pytest.mark.backend
def test_mixup_batches_are_convex_mixes_of_the_batch():
    from augmine.train.regularization import batch_mixer

    images, labels = _one_image_per_class()
    x, y = batch_mixer(6, mixup=0.4, seed=1)(images, labels)
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == np.float32 and y.shape == (6, 6)
    assert np.allclose(y.sum(1), 1.0) and (y >= 0).all()
    assert ((y > 1e-6).sum(1) <= 2).all() and (y.max(1) < 0.999).any()   # really mixed
    # one image per class: each mixed image is the label-weighted sum of the originals
    assert np.allclose(x, np.einsum("bc,chwk->bhwk", y, images.astype("float32")), atol=1e-3)


@pytest.mark.backend
def test_cutmix_pastes_a_patch_and_weights_labels_by_its_area():
    from augmine.train.regularization import batch_mixer

    images, labels = _one_image_per_class()
    x, y = (np.asarray(a) for a in batch_mixer(6, cutmix=1.0, seed=3)(images, labels))
    src = images.astype("float32")
    for b in range(6):
        own = (x[b] == src[b]).all(-1)
        other = int(np.argmax(np.where(np.arange(6) == b, -1, y[b])))
        if y[b, b] > 0.999:
            continue
        assert ((x[b] == src[other]).all(-1) | own).all()        # every pixel from one of two
        assert y[b, other] == pytest.approx(1 - own.mean(), abs=1e-5)


@pytest.mark.slow
@pytest.mark.backend
def test_a_run_with_every_regulariser_trains(tmp_path, synth_root):
    path = write_config(tmp_path, optimizer={"name": "sgd", "weight_decay": 5e-4},
                        regularization={"label_smoothing": 0.1, "mixup": 0.2, "cutmix": 1.0},
                        phases=[{"size": 16, "epochs": 2, "recipe": "none"}])
    result = train_run(path, synth_root, tmp_path / "run", progress=False)
    rows = read_history(result.run_dir)
    assert len(rows) == 2 and result.state.step == 26
    assert all(0 <= float(r["accuracy"]) <= 1 and float(r["val_loss"]) > 0 for r in rows)
    model = load_checkpoint(result.last_checkpoint)          # custom loss/metric reload
    assert model.loss.label_smoothing == pytest.approx(0.1)
    out = CliRunner().invoke(cli, ["evaluate", str(result.run_dir)])
    assert out.exit_code == 0, out.output
