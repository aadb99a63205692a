"""The app shows what training saw and what rounds did: the browser previews each phase of a
run at the phase's size and strength (with a chosen class's override), and the rounds page
shows each round against its control from its report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from test_app_pages import _restore_argv, app_test, no_exception, synth_index, texts  # noqa: F401

# a recipe whose first class trains at half the phase's strength
OVERRIDDEN = """name: overridden
transforms:
  - {transform: HorizontalFlip, p: 0.5}
  - {transform: Rotate, p: 1.0, limit: [-30, 30]}
classes:
  "{first}": {strength: 0.5, why: orientation matters}
"""


def cpu20_run(folder, data, last_recipe=None):
    """A run folder whose config is the built-in cpu-20 (phase 2: tiny-imagenet-14 at 32 px,
    strength 0.5), on ``data``; ``last_recipe`` replaces phase 2's recipe."""
    from augmine.core.runtime import recipes_dir

    cfg = yaml.safe_load((recipes_dir() / "cpu-20.yaml").read_text())
    cfg["data"] = str(data)
    if last_recipe is not None:
        cfg["phases"][1]["recipe"] = str(last_recipe)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return folder


# ------------------------------------------------------------------ each phase as it trains

def test_each_phase_maps_to_its_size_and_strength(synth_root, tmp_path):
    from augmine.app.data.recipes import (class_preview, phase_setting, preview_settings,
                                          recipe_choices, run_recipe_uses)
    from augmine.augment.compose import scale_recipe
    from augmine.core.runtime import recipes_dir
    from augmine.runs.rundir import RunDir

    run = cpu20_run(tmp_path / "run", synth_root)
    phases = RunDir(run).config.phases
    first, second = phase_setting(1, phases[0]), phase_setting(2, phases[1])
    assert (first.size, first.strength, second.size, second.strength) == (16, 1.0, 32, 0.5)
    assert second.label == "run phase 2 (32 px, strength 0.5)"
    assert second.caption() == ("Previewed as run phase 2 trains it: 32 px, strength 0.5 (the "
                                "probabilities and ranges listed, scaled to 0.5).")

    ti14 = str((recipes_dir() / "tiny-imagenet-14.yaml").resolve())
    labels, default = recipe_choices(run, tmp_path / "empty")
    assert default == ti14
    assert labels[ti14] == "run phase 2 (32 px, strength 0.5), built-in: tiny-imagenet-14.yaml"
    options, at = preview_settings(run_recipe_uses(run)[ti14])
    assert options[at] == second
    assert [o.label for o in options[1:]] == ["16 px, as written", "32 px, as written",
                                              "64 px, as written"]

    # the recipe previewed is the one training builds: scaled to the phase's strength
    index = synth_index(synth_root)
    recipe, note, warning = class_preview(scale_recipe(ti14, 1.0), index.class_ids,
                                          index.class_names, 0, second)
    assert recipe.strength == 0.5 and note is None and warning is None
    assert recipe.transforms == scale_recipe(ti14, 0.5).transforms


def test_a_class_override_multiplies_the_phases_strength(synth_root, tmp_path):
    from augmine.app.data.recipes import class_preview, phase_setting
    from augmine.augment.recipes import load_recipe
    from augmine.runs.rundir import RunDir

    names = synth_index(synth_root).class_names
    rec = tmp_path / "overridden.yaml"
    rec.write_text(OVERRIDDEN.replace("{first}", names[0]))
    run = cpu20_run(tmp_path / "run", synth_root, rec)
    second = phase_setting(2, RunDir(run).config.phases[1])
    index = synth_index(synth_root)
    recipe, note, _ = class_preview(load_recipe(rec), index.class_ids, index.class_names, 0,
                                    second)
    assert recipe.strength == pytest.approx(0.25)
    assert note == (f"{names[0]} trains under its own override (strength 0.5 x the 0.5 of run "
                    "phase 2 = 0.25): previewed as it trains")
    recipe, note, _ = class_preview(load_recipe(rec), index.class_ids, index.class_names, 1,
                                    second)
    assert recipe.strength == 0.5 and "has no override of its own" in note


def test_browser_previews_the_runs_phase_at_its_size_and_strength(synth_root, tmp_path,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = synth_index(synth_root).class_names
    rec = tmp_path / "overridden.yaml"
    rec.write_text(OVERRIDDEN.replace("{first}", names[0]))
    run = cpu20_run(tmp_path / "run", synth_root, rec)
    at = app_test(data=synth_root, run=run)
    no_exception(at)
    path = at.selectbox(key="recipe_file").value
    assert path == str(rec.resolve())
    preview_as = at.selectbox(key=f"as:{path}")
    assert preview_as.options[0] == "run phase 2 (32 px, strength 0.5)"
    assert ("Previewed as run phase 2 trains it: 32 px, strength 0.5 (the probabilities and "
            "ranges listed, scaled to 0.5).") in texts(at)
    assert all(c.endswith("(32 px)") for c in at.image[1].captions)
    at.selectbox(key="cls").set_value(names[1]).run()
    phase_grid = list(at.image[1].value)
    # the same size as written (strength 1) shows other pictures: the strength is applied
    at.selectbox(key=f"as:{path}").select_index(2).run()
    no_exception(at)
    assert "Previewed at 32 px, strength 1 (the recipe as written)." in texts(at)
    assert all(c.endswith("(32 px)") for c in at.image[1].captions)
    assert list(at.image[1].value) != phase_grid
    # a class with its own override: the override's strength times the phase's
    at.selectbox(key=f"as:{path}").select_index(0).run()
    at.selectbox(key="cls").set_value(names[0]).run()
    no_exception(at)
    assert any("strength 0.5 x the 0.5 of run phase 2 = 0.25" in e.value for e in at.info)


# --------------------------------------------------------------------------- the rounds page

def fake_effect(synth_root, control: bool = True):
    """measure_round on planted predictions: the round loses class 2 against the control."""
    from augmine.rounds.runner import measure_round

    index = synth_index(synth_root)
    y = np.asarray(index.val.labels)
    eye = np.eye(index.num_classes, dtype=np.float32)
    before = eye[y]
    after = before.copy()
    after[y == 2] = eye[3]
    return measure_round(index, "holdout", 0, [0, 1], before, after,
                         before.copy() if control else None, reps=200)


def test_rounds_table_holds_the_reports_numbers(synth_root):
    from augmine.app.data.rounds import class_rows, effect_rows, loser_rows

    effect = fake_effect(synth_root)
    rows = effect_rows(effect)
    assert [r["metric"] for r in rows] == list(effect["table"])
    for r in rows:
        cell = effect["table"][r["metric"]]
        assert (r["before"], r["after"], r["control"], r["net of control"]) == \
            tuple(cell[k]["value"] for k in ("before", "after", "control", "effect"))
        assert r["net of control 95% CI"] == \
            f"{cell['effect']['lo']:+.3f} to {cell['effect']['hi']:+.3f}"
    by = {r["metric"]: r for r in rows}
    assert by["other F1"]["verdict"] == "lower (interval below zero)"
    assert by["chosen F1"]["verdict"] == "no measurable change"
    names = synth_index(synth_root).class_names
    assert [r["class"] for r in class_rows(effect)] == [names[0], names[1]]
    lost = loser_rows(effect)
    assert lost[0]["class"] == names[2] and lost[0]["F1 control"] == 1.0
    assert lost[0]["change"] == -1.0
    # without a control: no net column values, the verdict is against the start
    rows = effect_rows(fake_effect(synth_root, control=False))
    assert all(r["net of control"] is None for r in rows)
    assert {r["metric"]: r["verdict"] for r in rows}["other F1"] == \
        "lower (interval below zero)"


@pytest.mark.slow
def test_rounds_page_shows_each_round_against_its_control(round_run, synth_root):
    report = json.loads((round_run.run / "reports" / "round-1" / "report.json").read_text())
    effect = report["effect"]
    at = app_test(data=synth_root, run=round_run.run, page="Rounds")
    no_exception(at)
    assert at.header[0].value == "Rounds"
    heads = [s.value for s in at.subheader]
    assert heads == [f"round 1 ({report['meta']['mode']}, {report['meta']['epochs']} epochs "
                     f"from {report['meta']['start_stage']}): chose "
                     + ", ".join(effect["chosen"])]
    df = at.dataframe[0].value
    assert df["metric"].tolist() == list(effect["table"])
    for col, key in (("before", "before"), ("after", "after"), ("control", "control"),
                     ("after - before", "change"), ("net of control", "effect")):
        assert df[col].tolist() == [effect["table"][m][key]["value"] for m in effect["table"]]
    assert df["net of control 95% CI"].tolist() == [
        f"{c['effect']['lo']:+.3f} to {c['effect']['hi']:+.3f}"
        for c in (effect["table"][m] for m in effect["table"])]
    shown = texts(at)
    assert f"measured on {effect['measurement']} ({effect['measurement_images']} images)" in shown
    classes = at.dataframe[1].value
    assert classes["class"].tolist()[:len(effect["chosen"])] == effect["chosen"]
    if effect["losers"]:
        assert at.dataframe[2].value["class"].tolist() == [c["name"] for c in effect["losers"]]
    for key in ("warning", "note"):
        if effect.get(key):
            assert effect[key] in shown


@pytest.mark.slow
def test_rounds_page_without_rounds_names_the_command(mining_run, synth_root):
    at = app_test(data=synth_root, run=mining_run, page="Rounds")
    no_exception(at)
    run = mining_run.resolve()
    hint = [i.value for i in at.info]
    assert hint == [f"{run} has no mining round yet: `augmine mine round {run}` trains one "
                    "against its control"]
    assert not at.dataframe
