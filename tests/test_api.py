"""The public Python API: lazy top-level exports, any Keras model in a training config,
user callbacks, augmine's per-class report inside a user's own fit, and the examples."""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import augmine
from augmine.cli import cli
from augmine.runs.config import load_config, ModelConfig
from augmine.runs.factories import create_model
from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir
from support import augmine_command, subprocess_env

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
TINY = {"name": "tiny", "batch_size": 32, "seed": 0, "workers": 0,
        "mixed_precision": "false", "strategy": "default",
        "schedule": {"min_lr": 0.01, "max_lr": 0.1, "half_cycle": 20},
        "phases": [{"size": 16, "epochs": 1, "recipe": "none"}]}
BUILDER = {"builder": "model_builders:tiny_cnn", "args": {"filters": 4}}


def write_config(folder: Path, **changes) -> Path:
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}, sort_keys=False))
    return path


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# --------------------------------------------------------------------------- the package

def test_import_is_cheap_and_exports_documented_names():
    code = ("import sys, augmine; heavy = [m for m in ('keras', 'tensorflow', "
            "'albumentations') if m in sys.modules]; print(heavy, sorted(augmine.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("[] ")                 # nothing heavy imported
    for name in ("load_index", "load_recipe", "train_dataset", "eval_dataset", "close_feed",
                 "evaluate_model", "per_class_report", "symmetric_pairs", "make_plan",
                 "OversamplingPlan", "PerClassReport", "oversampled_feed"):
        assert name in augmine.__all__
        doc = inspect.getdoc(getattr(augmine, name)) or ""
        assert len(doc) > 80, name
    for name in ("train_dataset", "eval_dataset", "evaluate_model", "per_class_report",
                 "symmetric_pairs", "make_plan", "load_index", "oversampled_feed"):
        assert "(N,)" in inspect.getdoc(getattr(augmine, name)) or \
            "(C" in inspect.getdoc(getattr(augmine, name)) or \
            "(B," in inspect.getdoc(getattr(augmine, name)), name
    with pytest.raises(AttributeError):
        augmine.no_such_name


# --------------------------------------------------------------------------- model configs

@pytest.mark.parametrize("model,message", [
    ({**BUILDER, "width": 8}, "model: width is a DenseNet key that does not apply to a model "
                              "from builder; remove it or the builder"),
    ({"builder": "model_builders:tiny_cnn", "application": "ResNet50V2"},
     "give one of builder, application, not several"),
    ({"builder": "no_such_package.models:build"}, "model.builder: cannot import"),
    ({"builder": "model_builders:nothing"}, "model_builders has no 'nothing'"),
    ({"builder": "model_builders"}, "is not a 'package.module:function' name"),
    ({"file": "missing.keras"}, "model.file: missing.keras does not exist"),
    ({"args": {"alpha": 1}}, "'args' goes with a builder or an application"),
    ({"name": "resnet18"}, "unknown key 'name'"),
])
def test_model_config_errors_are_one_line(tmp_path, model, message):
    with pytest.raises(AugmineError) as err:
        load_config(write_config(tmp_path, model=model))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "train.yaml"))


@pytest.mark.parametrize("callbacks,message", [
    (["nope"], "callbacks[1]: 'nope' is not a 'package.module:function' name"),
    (["model_builders:csv_logger", "model_builders:gone"],
     "callbacks[2]: model_builders has no 'gone'"),
    ("model_builders:csv_logger", "callbacks:"),
])
def test_callback_names_are_checked_when_the_config_loads(tmp_path, callbacks, message):
    with pytest.raises(AugmineError, match=None) as err:
        load_config(write_config(tmp_path, callbacks=callbacks))
    assert message in str(err.value)


def test_applications_scale_their_input_once():
    from augmine.model.sources import fixed_size, rescaled

    plain = create_model(ModelConfig(application="MobileNetV2", args={"alpha": 0.35}), 7)
    assert rescaled(plain) and plain.output_shape == (None, 7) and fixed_size(plain) is None
    own = create_model(ModelConfig(application="MobileNetV3Small",
                                   args={"minimalistic": True, "alpha": 0.75}), 7)
    assert not rescaled(own)                       # include_preprocessing: its own Rescaling
    fixed = create_model(ModelConfig(application="MobileNetV2",
                                     args={"alpha": 0.35, "input_shape": [32, 32, 3]}), 7)
    assert fixed_size(fixed) == (32, 32) and fixed.output_shape == (None, 7)
    with pytest.raises(AugmineError, match="did you mean 'ResNet50V2'"):
        create_model(ModelConfig(application="ResNet50v2"), 7)
    with pytest.raises(AugmineError, match="model.builder model_builders:not_a_model returned "
                                           "a str, not a keras.Model"):
        create_model(ModelConfig(builder="model_builders:not_a_model"), 7)


def test_fixed_size_model_with_other_phase_sizes_fails_before_anything_is_written(
        tmp_path, synth_root):
    cfg = write_config(tmp_path, model={**BUILDER, "args": {"size": 32}},
                       phases=[{"size": 16, "epochs": 1, "recipe": "none"},
                               {"size": 32, "epochs": 1, "recipe": "none"},
                               {"size": 64, "epochs": 1, "recipe": "none"}])
    res = run_cli("train", cfg, "--data", synth_root, "--run-dir", tmp_path / "run",
                  "--no-progress")
    assert res.exit_code != 0
    line = [ln for ln in res.output.splitlines() if ln.startswith("Error")][0]
    assert "takes 32x32 px images only; phases[1] 16 px, phases[3] 64 px differ" in line
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- training

@pytest.mark.slow
@pytest.mark.backend
def test_builder_model_trains_through_the_cli_and_resumes(tmp_path, synth_root, monkeypatch):
    from augmine.data.dataset import load_index
    from augmine.train.phases import train_extra_epochs

    monkeypatch.chdir(tmp_path)                     # csv_logger writes user_log.csv here
    cfg = write_config(tmp_path, model=BUILDER, callbacks=["model_builders:csv_logger"])
    res = run_cli("train", cfg, "--data", synth_root, "--run-dir", tmp_path / "run",
                  "--no-progress")
    assert res.exit_code == 0, res.output
    assert "added Rescaling(1/255) in front" in res.output
    run = RunDir(tmp_path / "run")
    recorded = yaml.safe_load(run.config_path.read_text())
    assert recorded["model"] == {**BUILDER, "rescale": True}
    assert recorded["callbacks"] == ["model_builders:csv_logger"]
    assert len((tmp_path / "user_log.csv").read_text().splitlines()) == 2   # header + epoch
    assert run.read_state().reports == ["phase-1"]
    # last.keras (the Rescaling wrapper around the builder's model) loads and trains on
    model = train_extra_epochs(run, load_index(synth_root), 1, stage="round-1", progress=False)
    assert [layer.name for layer in model.layers][:2] == ["image", "augmine_rescale"]
    assert run.read_state().epochs_done == 2
    assert len((tmp_path / "user_log.csv").read_text().splitlines()) == 3   # rounds too


# a user's builder module as people write it: Keras imported at its top
OWN_BUILDER = """\
import keras
from keras import layers


def small_cnn(num_classes, filters=4):
    inputs = keras.Input(shape=(None, None, 3))
    x = layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))
"""
# lines TensorFlow prints while it starts (C++ before absl is set up, then absl's)
TF_START_UP = re.compile(r"absl::InitializeLog|oneDNN|cuda|cuInit|cpu_feature_guard|"
                         r"TensorFlow binary|^[IWEF]\d{4} ", re.M)


@pytest.mark.slow
@pytest.mark.backend
def test_a_builder_beside_the_config_trains_from_another_folder_without_start_up_noise(
        tmp_path, synth_root):
    """`builder: "own_models_beside:small_cnn"` and own_models_beside.py in the config's
    folder; `augmine train` run from another folder, no PYTHONPATH pointing there."""
    folder, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "own_models_beside.py").write_text(OWN_BUILDER)
    cfg = write_config(folder, model={"builder": "own_models_beside:small_cnn"})
    out = subprocess.run([*augmine_command(), "train", str(cfg), "--data", str(synth_root),
                          "--run-dir", str(tmp_path / "run"), "--no-progress"],
                         cwd=elsewhere, env=subprocess_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert str(folder) not in subprocess_env()["PYTHONPATH"]
    assert "epoch 1/1: " in out.stdout
    assert RunDir(tmp_path / "run").read_state().status == "done"
    assert not TF_START_UP.search(out.stderr), out.stderr
    assert [ln for ln in out.stderr.splitlines() if ln.strip()] == [
        ln for ln in out.stderr.splitlines() if ln.startswith("warning: model (builder)")]


def test_a_builder_found_nowhere_names_the_folders_looked_in(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AugmineError) as err:
        load_config(write_config(folder, model={"builder": "absent_models:build"}))
    assert f"looked in {folder}, {tmp_path}" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_applications_example_config_trains_through_the_cli(tmp_path, synth_root):
    res = run_cli("train", EXAMPLES / "applications_config.yaml", "--data", synth_root,
                  "--run-dir", tmp_path / "run", "--no-progress")
    assert res.exit_code == 0, res.output
    run = RunDir(tmp_path / "run")
    assert run.config.model.application == "MobileNetV3Small"
    assert run.config.model.rescale is False      # it scales its own input
    assert run.read_state().reports == ["phase-1", "phase-2"]
    res = run_cli("mine", "analyze", run)
    assert res.exit_code == 0 and "phase-2, 64 px" in res.output


# --------------------------------------------------------------------------- your own fit

def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _app_page_text(run_dir: Path, data: Path) -> tuple[list, str]:
    from streamlit.testing.v1 import AppTest

    saved = list(sys.argv)
    sys.argv[:] = [str(REPO / "apps/streamlit_app.py"), str(run_dir), "--data", str(data)]
    try:
        at = AppTest.from_file(sys.argv[0], default_timeout=60)
        at.session_state["page"] = "Confusion explorer"
        at.run()
    finally:
        sys.argv[:] = saved
    return at.exception, at


@pytest.mark.slow
def test_own_model_example_writes_a_run_that_mine_and_the_app_open(tmp_path, synth_root, capsys):
    from augmine.train.callbacks import PerClassReport, oversampled_feed
    from augmine.feed.sampling import epoch_length

    example = _load_example("own_model")
    run_dir = example.main(["--data", str(synth_root), "--epochs", "2", "--size", "16",
                            "--width", "4", "--run-dir", str(tmp_path / "own")])
    assert "weakest:" in capsys.readouterr().out
    run = RunDir(run_dir)
    assert sorted(run.stages()) == ["epoch-1", "epoch-2"]
    assert [r["epoch"] for r in run.read_history()] == ["1", "2"]
    res = run_cli("mine", "analyze", run_dir)
    assert res.exit_code == 0, res.output
    assert "epoch-2, 16 px: accuracy" in res.output and "most confused" in res.output
    res = run_cli("mine", "plan", run_dir, "--k", "3")
    assert res.exit_code == 0, res.output
    assert "your own fit on augmine.oversampled_feed" in res.output
    assert run_cli("mine", "history", run_dir).exit_code == 0
    exception, at = _app_page_text(run_dir, synth_root)
    assert not exception, [e.value for e in exception]
    assert at.selectbox(key="stage").value == "epoch-2"

    # the plan's feed for the next fit, with the report every 2 epochs continuing the folder
    index = augmine.load_index(synth_root)
    plan_file = run.plan_path(1)
    feed = oversampled_feed(index, "none", 16, 32, plan_file, seed=0, workers=0)
    plan = augmine.OversamplingPlan.from_dict(run.read_plan(1))
    expected = -(-epoch_length(index, plan) // 32)
    model = example.small_cnn(index.num_classes, 4)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    try:
        assert len(feed) == expected > -(-epoch_length(index) // 32)
        model.fit(feed, epochs=3, verbose=0, shuffle=False,
                  callbacks=[PerClassReport(run_dir, index, 16, 64, every=2)])
    finally:
        augmine.close_feed(feed)
    assert sorted(run.stages()) == ["epoch-1", "epoch-2", "epoch-4", "epoch-5"]
    assert run.read_state().epochs_done == 5
    probs = np.load(run.report_dir("epoch-5") / "predictions.npz")["probs"]
    assert probs.shape == (len(index.val.labels), index.num_classes)
    with pytest.raises(AugmineError, match="plan file not found"):
        oversampled_feed(index, "none", 16, 32, tmp_path / "none.json")
