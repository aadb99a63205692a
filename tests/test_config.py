"""Defaults on the config schema: load_config resolves them once, a run's config.yaml
records them, an older config.yaml without them loads to the same config, bounds are
one-line errors, and the command line's overrides and help follow the schema (no Keras)."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from augmine.cli import cli
from augmine.core.errors import AugmineError
from augmine.core.runtime import resolve_recipe
from augmine.rounds.plans import mining_settings
from augmine.rounds.runner import checked_epochs, round_lr_range
from augmine.runs.config import config_default, config_differences, load_config, resume_config
from augmine.runs.rundir import RunDir
from support import tiny_config, write_config

# a config.yaml as runs recorded it before the defaults were on the schema: only what the
# user's config set (recipes resolved)
OLD_RECORD = {"name": "old", "batch_size": 32, "schedule": {"mode": "one_cycle", "max_lr": 0.1},
              "phases": [{"size": 16, "epochs": 2, "recipe": str(resolve_recipe("none"))}],
              "mining": {"k": 2}}


def test_run_records_the_resolved_config(tmp_path):
    cfg = load_config(write_config(tmp_path, mining={"k": 2}, schedule={"max_lr": 0.1}))
    run = RunDir(tmp_path / "run")
    run.write_config(cfg)
    recorded = yaml.safe_load(run.config_path.read_text(encoding="utf-8"))
    assert recorded["schedule"] == {"mode": "triangular", "min_lr": 0.001, "max_lr": 0.1,
                                    "half_cycle": 2000, "gamma": 0.99994}
    assert recorded["mining"] == {**recorded["mining"], "k": 2, "policy": "bottom-k",
                                  "epochs": 5, "partners": 1, "control": True,
                                  "class_weight": False, "keep_tolerance": 0.5,
                                  "compare_recipe": "tiny-imagenet-14.yaml",
                                  "distill_temperature": 2.0, "distill_weight": 1.0,
                                  "head_layers": 1}
    assert recorded["optimizer"] == {"name": "sgd", "momentum": 0.9, "nesterov": True}
    assert load_config(run.config_path, check_recipes=False).to_dict() == cfg.to_dict()


def test_old_config_yaml_without_defaults_loads_resolved_and_resumes(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.config_path.write_text(yaml.safe_dump(OLD_RECORD), encoding="utf-8")
    old = run.config
    assert (old.schedule.min_lr, old.schedule.final_lr, old.schedule.warmup_fraction,
            old.schedule.anneal) == (pytest.approx(0.004), pytest.approx(4e-6), 0.3, "cos")
    assert (old.mining.epochs, old.mining.k, old.mining.keep_tolerance) == (5, 2, 0.5)
    # the same config given in full (as a new run records it) is no difference on resume
    full = load_config(yaml.safe_load(old.to_yaml()), check_recipes=False)
    assert old.to_yaml() != yaml.safe_dump(OLD_RECORD) and config_differences(old, full) == {}
    # so is the user's config file, resolved again, given to --resume
    given = tmp_path / "old.yaml"
    given.write_text(yaml.safe_dump(OLD_RECORD), encoding="utf-8")
    cfg, lines = resume_config(old, {"phase": 1, "phase_epochs_done": 1}, given=given)
    assert cfg == old and lines == []
    # a config that went through a round trip (the demo's, recipe compare's arms) reads the
    # same: a built-in recipe named bare stays its name
    again = load_config(yaml.safe_load(old.to_yaml()))
    assert again.mining.compare_recipe == "tiny-imagenet-14.yaml"
    assert config_differences(old, again) == {}
    # a default changed on purpose still is one
    other = load_config({**OLD_RECORD, "mining": {"k": 2, "epochs": 7}}, check_recipes=False)
    assert config_differences(old, other) == {"mining.epochs": (5, 7)}


@pytest.mark.parametrize("section, message", [
    ({"mining": {"epochs": 0}}, "mining.epochs: 0 is not a valid epoch count; use a whole "
                                "number >= 1"),
    ({"mining": {"keep_tolerance": -1}}, "mining.keep_tolerance: -1 is not valid; use a "
                                         "number >= 0.0"),
    ({"mining": {"partners": 0}}, "mining.partners: 0 is not a valid partner count; use a "
                                  "whole number >= 1"),
    ({"schedule": {"min_lr": 0.2}}, "schedule: min_lr 0.2 is above max_lr 0.05 (the "
                                    "default); lower min_lr or raise max_lr"),
    ({"schedule": {"mode": "one_cycle", "max_lr": 0.01, "final_lr": 0.001}},
     "schedule: final_lr 0.001 is above min_lr 0.0004 (the default); lower final_lr"),
])
def test_a_bound_broken_in_a_config_file_is_one_line_naming_file_and_field(tmp_path, section,
                                                                          message):
    path = write_config(tmp_path, **section)
    with pytest.raises(AugmineError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: {message}"
    res = CliRunner().invoke(cli, ["train", str(path), "--run-dir", str(tmp_path / "run")])
    assert (res.exit_code, res.output) == (1, f"Error: {path}: {message}\n")
    assert not (tmp_path / "run").exists()


def test_command_line_wins_over_the_config_and_the_config_over_the_schema(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_config(load_config(tiny_config(mining={"epochs": 7, "min_lr": 0.02}),
                                 check_recipes=False))
    settings = mining_settings(run)
    assert checked_epochs(None, settings) == 7 and checked_epochs(3, settings) == 3
    assert mining_settings(run, epochs=3, partners=None)["epochs"] == 3
    assert mining_settings(run)["partners"] == config_default("mining.partners") == 1
    # the round's LR: mining.min_lr, else the resolved schedule's (TINY: 0.01 to 0.1)
    assert round_lr_range(run.config, settings) == pytest.approx((0.02, 0.028))
    plain = RunDir(tmp_path / "plain")
    plain.write_config(load_config(tiny_config(), check_recipes=False))
    assert round_lr_range(plain.config, mining_settings(plain)) == pytest.approx((0.01, 0.019))
    with pytest.raises(AugmineError, match="--epochs 0: train at least 1 epoch"):
        checked_epochs(0, settings)


@pytest.mark.parametrize("command", [["mine", "round"], ["mine", "compare"]])
def test_help_prints_the_schema_defaults(command):
    out = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200).output
    assert f"[config mining.epochs, else {config_default('mining.epochs')}]" in out
    assert f"else {config_default('mining.partners')}]" in out and "{mining" not in out
    if command[1] == "compare":
        assert f"else {config_default('mining.compare_recipe')}]" in out


def _shown(value) -> str:
    return {True: "true", False: "false", "": '""'}.get(value, value) \
        if isinstance(value, (bool, str)) else f"{value:g}" if isinstance(value, float) \
        else str(value)


def schema_defaults_table() -> list[str]:
    """The defaults table of docs/configs.md, made from the schema: every key with a default
    (a schedule key's per mode; the DenseNet's from build_densenet)."""
    from augmine.runs.config import SECTIONS, TrainConfig
    from augmine.runs.config import SCHEDULE_DEFAULTS, Derived

    rows = ["| key | default |", "|---|---|"]
    for name, field in TrainConfig.model_fields.items():
        if name not in SECTIONS and name != "path" and field.default is not None:
            rows.append(f"| `{name}` | {_shown(field.default)} |")
    for section in ("model", "optimizer", "regularization"):
        for key, value in config_default(section).options().items():
            rows.append(f"| `{section}.{key}` | {_shown(value)} |")
    rows.append(f"| `schedule.mode` | {config_default('schedule.mode')} |")
    keys = dict.fromkeys(k for defaults in SCHEDULE_DEFAULTS.values() for k in defaults)
    for key in keys:
        by_mode: dict[str, list[str]] = {}
        for mode, defaults in SCHEDULE_DEFAULTS.items():
            if key in defaults:
                value = defaults[key]
                text = value.text if isinstance(value, Derived) else _shown(value)
                by_mode.setdefault(text, []).append(mode)
        rows.append(f"| `schedule.{key}` | " + "; ".join(
            f"{', '.join(modes)}: {text}" for text, modes in by_mode.items()) + " |")
    for section in ("mining", "phases"):
        for key, field in SECTIONS[section].model_fields.items():
            if field.default is not None and not field.is_required():
                rows.append(f"| `{section}.{key}` | {_shown(field.default)} |")
    return rows


def test_docs_defaults_table_is_the_schemas():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "configs.md").read_text("utf-8")
    table = "\n".join(schema_defaults_table())
    assert table in docs, f"docs/configs.md's defaults table should read:\n{table}"
