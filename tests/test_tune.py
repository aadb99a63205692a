"""`augmine recipe tune`: the strength is chosen on one half of val and measured on the
other, and the written config is the one that trained it."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from augmine.cli import cli
from augmine.runs.config import load_config
from augmine.core.errors import AugmineError
from augmine.analysis.plans import selection_split
from augmine.experiments.tune import choose_strength
from support import ONE_PHASE, write_config


def test_choice_is_made_on_one_half_and_measured_on_the_other():
    y = np.repeat(np.arange(4), 50)
    sel, meas = selection_split(y, 0)
    hits = np.zeros((3, len(y)))
    hits[0, :] = 0.5 > np.random.default_rng(0).random(len(y))     # noise around 50%
    hits[1, sel] = 1.0                   # perfect where it is chosen, useless elsewhere
    hits[2, :] = 0.7 > np.random.default_rng(1).random(len(y))
    out = choose_strength(y, hits, [0.0, 0.5, 1.0])
    assert out["chosen"] == 1 and out["strength"] == 0.5
    m = out["measurement"]
    assert out["selection"]["images"] + m["images"] == len(y)
    assert m["top1"][1] == 0.0                 # its measurement half shows what it is worth
    assert m["diff_low"][2] > 0                # strength 1 measurably beats the chosen one
    assert m["diff"][1] == 0.0


def test_ties_go_to_the_milder_strength_and_bad_input_is_one_line():
    y = np.repeat(np.arange(2), 10)
    out = choose_strength(y, np.ones((3, 20)), [1.0, 0.25, 0.5])
    assert out["strength"] == 0.25
    with pytest.raises(AugmineError, match="at least 2 strengths"):
        choose_strength(y, np.ones((1, 20)), [1.0])


def test_tune_cli_rejects_a_recipe_without_transforms_and_a_single_strength(tmp_path,
                                                                           synth_root):
    config = write_config(tmp_path, phases=ONE_PHASE)
    base = ["recipe", "tune", "--data", str(synth_root), "--config", str(config)]
    res = CliRunner().invoke(cli, [*base[:2], "none", *base[2:]])
    assert res.exit_code == 1 and "has no transforms" in res.output
    res = CliRunner().invoke(cli, [*base[:2], "light", *base[2:], "--strength", "1"])
    assert res.exit_code == 1 and "at least two strengths" in res.output


@pytest.mark.slow
def test_tune_trains_each_strength_and_writes_the_config_that_trained_the_choice(
        tmp_path, synth_root):
    config = write_config(tmp_path, phases=ONE_PHASE)
    written = tmp_path / "tuned.yaml"
    res = CliRunner().invoke(cli, ["recipe", "tune", "light", "--data", str(synth_root),
                                   "--config", str(config), "--strength", "0,1",
                                   "--out", str(tmp_path / "tune"), "-o", str(written),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "chosen on one half of val" in res.output and "<- chosen" in res.output
    assert (tmp_path / "tune" / "light-s0").is_dir() and (tmp_path / "tune" / "light-s1").is_dir()
    chosen = float(next(line.split()[0] for line in res.output.splitlines()
                        if line.endswith("<- chosen")))
    tuned = load_config(written)
    assert [p.strength for p in tuned.phases] == [chosen]
    assert tuned.phases[0].recipe.endswith("light.yaml")
    assert f"augmine train {written}" in res.output
