"""The gentle round mode: the chosen classes train under milder augmentation, chosen by
affinity on the selection images only, against a control with the same budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from augmine.train.affinity import TAILORED_STRENGTH
from augmine.cli import cli
from augmine.rounds.arms import gentle_overrides
from augmine.analysis.plans import OversamplingPlan
from augmine.augment.compose import class_overrides
from augmine.augment.recipes import load_recipe
from augmine.runs.rundir import RunDir
from test_affinity import COLOUR_RECIPE, TINY, write_colour_dataset


def fake_affinity(index, planted: int, rows):
    """An affinity result in which column 1 costs class ``planted`` 60 points on ``rows``
    (val indices) and nothing anywhere else."""
    n = len(index.val.labels)
    labels = np.asarray(index.val.labels)
    correct = np.ones((5, n))                       # clean, flip, gray, hue, whole
    hit = [i for i in rows if labels[i] == planted]
    correct[2, hit[:int(0.6 * len(hit))]] = 0.0
    return {"val_paths": [str(p) for p in index.val.paths], "labels": labels.tolist(),
            "class_ids": list(index.class_ids), "correct": correct.tolist(),
            "columns": ["HorizontalFlip", "ToGray", "HueSaturationValue", "whole recipe"]}


def test_overrides_come_from_the_selection_rows_only(synth_index):
    from augmine.analysis.plans import selection_split

    sel, meas = selection_split(synth_index.val.labels, 0)
    plan = OversamplingPlan(np.ones(synth_index.num_classes), [1, 2],
                            synth_index.class_ids, synth_index.class_names)
    ids = synth_index.class_ids
    # planted on the selection half: class 1 loses ToGray, class 2 gets half strength
    got = gentle_overrides(plan, synth_index, fake_affinity(synth_index, 1, sel), sel)
    assert set(got) == {ids[1], ids[2]}
    assert got[ids[1]]["without"] == ["ToGray"] and "selection images" in got[ids[1]]["why"]
    assert got[ids[2]] == {"strength": TAILORED_STRENGTH, "why": got[ids[2]]["why"]}
    # the same drop planted on the measurement half only is not seen
    got = gentle_overrides(plan, synth_index, fake_affinity(synth_index, 1, meas), sel)
    assert "without" not in got[ids[1]]
    # no affinity (a holdout-selected run): half strength for every chosen class
    got = gentle_overrides(plan, synth_index, None, sel)
    assert all(v["strength"] == TAILORED_STRENGTH for v in got.values())
    assert "holdout" in got[ids[1]]["why"]


@pytest.mark.slow
def test_gentle_round_lifts_the_colour_classes_against_its_control(tmp_path):
    """Trained with ToGray at p=1, red and green discs (told apart only by colour) are the
    weakest classes; the gentle round gives them milder augmentation (colour some of the
    time) and their F1 rises net of the control, which keeps the recipe as trained."""
    root = write_colour_dataset(tmp_path / "data", train=100, val=40)
    recipe = tmp_path / "colour-shifts.yaml"
    recipe.write_text(yaml.safe_dump(COLOUR_RECIPE, sort_keys=False))
    config = {**TINY, "phases": [{"size": 16, "epochs": 10, "recipe": str(recipe)}],
              "mining": {"k": 2, "epochs": 3, "min_lr": 0.001, "max_lr": 0.005}}
    cfg_path = tmp_path / "colour.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    run = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", str(cfg_path), "--data", str(root), "--run-dir",
                                   str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["mine", "round", str(run), "--mode", "gentle",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "round 1 (gentle): training the round arm" in res.output
    written = load_recipe(RunDir(run).gentle_recipe_path("round-1"))
    report = RunDir(run).report_dir("round-1") / "report.json"
    effect = json.loads(report.read_text())["effect"]
    assert "red_circle" in effect["chosen"] or "green_circle" in effect["chosen"], effect
    assert sorted(written.classes) == sorted(effect["chosen"])       # ids are the names here
    assert class_overrides(written, *_ids_and_names(root)).keys()
    table = effect["table"]
    assert table["chosen F1"]["effect"]["lo"] > 0, table
    assert table["top-1"]["effect"]["value"] >= 0 and table["macro F1"]["effect"]["value"] >= 0


def _ids_and_names(root):
    from augmine.data.dataset import load_index

    index = load_index(root)
    return index.class_ids, index.class_names
