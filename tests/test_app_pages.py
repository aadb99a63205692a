"""The app's pages as a user meets them (AppTest): the user's recipes in the browser, the
original apart from the grid, the pair view's order, split captions, the comparison table,
pages by URL and the wrong-dataset warning. Run folders are fabricated; nothing trains."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "apps" / "streamlit_app.py"
TIMEOUT = 60

# a recipe with per-class overrides, as `augmine inspect --suggest` or a gentle round write one
SUGGESTED = """name: suggested
description: written in the working folder
transforms:
  - {transform: HorizontalFlip, p: 0.5}
  - {transform: ColorJitter, p: 1.0, brightness: [0.6, 1.4], contrast: [0.6, 1.4]}
  - {transform: Rotate, p: 1.0, limit: [-30, 30]}
classes:
  "{first}": {strength: 0, why: colour is the cue}
  "{second}": {without: [Rotate]}
"""


@pytest.fixture(autouse=True)
def _restore_argv():
    saved = list(sys.argv)
    yield
    sys.argv[:] = saved


def app_test(data=None, run=None, page: str | None = "Augmentation browser", query=None):
    """The app as ``augmine app [RUN] [--data DATA]`` starts it, run once on ``page`` (None:
    whatever the URL's ``query`` parameters open)."""
    from streamlit.testing.v1 import AppTest

    sys.argv[:] = [str(APP)] + ([str(run)] if run is not None else []) + (
        ["--data", str(data)] if data is not None else [])
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    if page is not None:
        at.session_state["page"] = page
    return at.run()


def texts(at) -> str:
    parts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "subheader", "header"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def synth_index(root):
    from augmine.data.dataset import load_index

    return load_index(root)


def make_run(folder: Path, data: Path, recipe: Path | None = None, class_ids=None) -> Path:
    """A run folder: config.yaml (``data``, two phases under ``recipe``) and, when
    ``class_ids`` is given, the state the trainer records (the classes it trained on)."""
    from augmine.runs.rundir import RunDir

    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"name": "fake", "data": str(data)}
    if recipe is not None:
        cfg["phases"] = [{"size": 16, "epochs": 1, "recipe": str(recipe)},
                         {"size": 32, "epochs": 1, "recipe": str(recipe)}]
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    if class_ids is not None:
        RunDir(folder).write_state({"epochs_done": 1, "class_ids": list(class_ids)})
    return folder


@pytest.fixture
def workdir(tmp_path, monkeypatch, synth_root):
    """A working folder holding a recipe with class overrides and a training config (which
    is no recipe); the app is started from here."""
    names = synth_index(synth_root).class_names
    work = tmp_path / "work"
    work.mkdir()
    (work / "suggested.yaml").write_text(SUGGESTED.replace("{first}", names[0])
                                         .replace("{second}", names[1]))
    (work / "my-config.yaml").write_text("name: cfg\nphases: [{size: 16, epochs: 1}]\n")
    monkeypatch.chdir(work)
    return work


def recipe_labels(at) -> list[str]:
    """The recipe choices as the user reads them (the selectbox's shown labels)."""
    return list(at.selectbox(key="recipe_file").options)


# --------------------------------------------------------------------------- 1. the user's recipes

def test_browser_lists_the_runs_the_working_folders_and_a_typed_recipe(synth_root, workdir,
                                                                       tmp_path):
    from augmine.core.runtime import recipes_dir

    own = tmp_path / "recipes" / "run-own.yaml"
    own.parent.mkdir()
    own.write_text("name: run-own\ntransforms:\n  - {transform: HorizontalFlip, p: 0.5}\n")
    run = make_run(tmp_path / "run", synth_root, own)
    at = app_test(data=synth_root, run=run)
    no_exception(at)
    labels = recipe_labels(at)
    assert "run phase 1 (16 px), run phase 2 (32 px): run-own.yaml" in labels
    assert "here: suggested.yaml" in labels and "here: my-config.yaml" not in labels
    assert "built-in: light.yaml" in labels
    order = labels
    assert order.index("here: suggested.yaml") < order.index("built-in: light.yaml")
    # the run's last phase's recipe is the one shown first
    assert at.selectbox(key="recipe_file").value == str(own.resolve())
    assert any("HorizontalFlip" in c.label for c in at.checkbox)

    # a typed path: missing, not a recipe, then a good one (selected at once)
    at.text_input(key="recipe_typed").set_value(str(tmp_path / "nope.yaml")).run()
    no_exception(at)
    assert any("no such recipe file" in e.value for e in at.error)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntransforms:\n  - {transform: NotATransform, p: 1}\n")
    at.text_input(key="recipe_typed").set_value(str(bad)).run()
    no_exception(at)
    err = [e.value for e in at.error]
    assert len(err) == 1 and str(bad) in err[0] and "NotATransform" in err[0]
    assert "\n" not in err[0] and "Traceback" not in err[0]
    typed = tmp_path / "elsewhere" / "typed.yaml"
    typed.parent.mkdir()
    typed.write_text("name: typed\ntransforms:\n  - {transform: VerticalFlip, p: 1.0}\n")
    at.text_input(key="recipe_typed").set_value(str(typed)).run()
    no_exception(at)
    assert not at.error
    assert at.selectbox(key="recipe_file").value == str(typed.resolve())
    assert f"typed: {typed.resolve()}" in recipe_labels(at)
    assert any("VerticalFlip" in c.label for c in at.checkbox)
    at.selectbox(key="recipe_file").set_value(str((recipes_dir() / "light.yaml").resolve()))
    at.run()
    no_exception(at)
    assert at.selectbox(key="recipe_file").index == recipe_labels(at).index("built-in: light.yaml")


def test_recipe_with_class_overrides_previews_per_class_and_keeps_them(synth_root, workdir):
    from augmine.app.data.recipes import load_recipe_text

    names = synth_index(synth_root).class_names
    at = app_test(data=synth_root)
    at.selectbox(key="recipe_file").set_value(str((workdir / "suggested.yaml").resolve())).run()
    at.selectbox(key="cls").set_value(names[0]).run()
    no_exception(at)
    assert any(f"{names[0]} trains under its own override (strength 0)" in e.value
               for e in at.info)
    grid = at.image[1].value
    assert len(grid) == 16 and len(set(grid)) == 1           # strength 0: no augmentation
    at.selectbox(key="cls").set_value(names[2]).run()
    no_exception(at)
    assert any("has no override of its own" in e.value for e in at.info)
    assert len(set(at.image[1].value)) > 1
    # the YAML the user downloads keeps the overrides; switching off the transform an
    # override leaves out keeps the recipe valid
    prefix = f"t:{at.selectbox(key='recipe_file').value}:"
    at.checkbox(key=f"{prefix}on2").uncheck().run()
    no_exception(at)
    text = at.code[0].value
    rec = load_recipe_text(text)
    assert rec.classes[names[0]] == {"strength": 0, "why": "colour is the cue"}
    assert names[1] in rec.classes and "Rotate" not in text
    assert "classes:" in texts(at)


def test_a_recipe_naming_other_classes_still_previews_with_a_warning(synth_root, tmp_path,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere.yaml").write_text(SUGGESTED.replace("{first}", "Chihuahua")
                                             .replace("{second}", "teddy bear"))
    at = app_test(data=synth_root)
    at.selectbox(key="recipe_file").set_value(str((tmp_path / "elsewhere.yaml").resolve()))
    at.run()
    no_exception(at)
    assert any("unknown class 'Chihuahua'" in w.value and "without the class overrides"
               in w.value for w in at.warning)
    assert len(at.image[1].value) == 16


# --------------------------------------------------------------------------- 2. layout

def test_original_sits_above_the_grid_not_beside_it(synth_root):
    at = app_test(data=synth_root)
    no_exception(at)
    original = [im for im in at.image if im.captions and im.captions[0].startswith("original")]
    assert len(original) == 1 and "(val image" in original[0].captions[0]
    holding = [c for c in at.columns
               if any(im.captions and im.captions[0].startswith("original") for im in c.image)]
    assert holding
    for col in holding:       # every column with the original holds the grid below it too
        assert any(len(im.value) == 16 for im in col.image)


# --------------------------------------------------------------------------- 3/4. pair view, splits

@pytest.fixture
def planted_run(synth_root, tmp_path):
    """A round report whose predictions plant: class 0 predicted as class 2 (confidently,
    twice) and as class 1 (hesitantly, three times); class 1 predicted as 0 once and as 2
    once; plus suspects scored on val."""
    from augmine.analysis.reports import write_stage_report

    index = synth_index(synth_root)
    y = index.val.labels
    c = index.num_classes
    probs = np.full((len(y), c), 0.1 / (c - 1), np.float32)
    probs[np.arange(len(y)), y] = 0.9
    zero, one = np.flatnonzero(y == 0), np.flatnonzero(y == 1)

    def say(i, cls, p):
        probs[i] = (1 - p) / (c - 1)
        probs[i, cls] = p

    for i in zero[:2]:
        say(i, 2, 0.9)                # other mistakes, most confident
    for i in zero[2:5]:
        say(i, 1, 0.5)                # the pair's cross-confusions
    say(one[0], 0, 0.4)
    say(one[1], 2, 0.95)
    run = make_run(tmp_path / "run", synth_root, class_ids=index.class_ids)
    write_stage_report(run, "round-1", y, probs, list(index.class_ids), list(index.class_names),
                       meta={"kind": "round", "size": 16, "epochs_done": 1},
                       val_paths=index.val.paths)
    with open(run / "reports" / "round-1" / "suspects.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["name", "path", "split", "scored",
                                           "self_confidence", "predicted_name",
                                           "predicted_prob"])
        w.writeheader()
        for i in zero[:3]:
            w.writerow({"name": index.class_names[0], "path": index.val.paths[i],
                        "split": "val", "scored": "out of sample", "self_confidence": 0.05,
                        "predicted_name": index.class_names[2], "predicted_prob": 0.9})
    return run, index


def test_pair_view_shows_the_pairs_cross_confusions_first(planted_run, synth_root):
    run, index = planted_run
    a, b, c = (index.class_names[i] for i in range(3))
    at = app_test(data=synth_root, run=run, page="Confusion explorer")
    no_exception(at)
    pair = at.selectbox(key="pair")
    assert pair.format_func(pair.value).startswith(f"{a} <-> {b}")
    heads = [m.value for m in at.markdown if m.value.startswith("**")]
    assert f"**{a}: 5 of 10 misclassified, 3 as {b}**" in heads
    assert f"**{b}: 2 of 10 misclassified, 1 as {a}**" in heads
    want = [f"**{a} predicted as {b} (3)**", f"**{a} predicted as other classes (2)**",
            "**correct (5)**", f"**{b} predicted as {a} (1)**",
            f"**{b} predicted as other classes (1)**", "**correct (8)**"]
    assert [h for h in heads if h in want] == want
    caps = [cap for im in at.image for cap in im.captions]
    wrong = [cap for cap in caps if cap.startswith("✗")]
    # in each column the cross-confusions come before more confident other mistakes
    assert wrong == [f"✗ {b} (0.50)"] * 3 + [f"✗ {c} (0.90)"] * 2 + \
        [f"✗ {a} (0.40)", f"✗ {c} (0.95)"]
    assert "Validation images of the round-1 report" in texts(at)


def test_suspects_caption_names_the_split_they_were_scored_on(planted_run, synth_root):
    from augmine.app.data.reports import suspects_caption

    run, _ = planted_run
    at = app_test(data=synth_root, run=run, page="Confusion explorer")
    no_exception(at)
    caption = [c.value for c in at.caption if "believes least" in c.value]
    assert len(caption) == 1
    assert "Scored on val images, out of sample" in caption[0]
    assert "Training images" not in caption[0]
    assert "Scored on train images, in sample (trained on)" in suspects_caption(
        [{"split": "train", "scored": "in sample (trained on)"}])
    assert "not recorded" in suspects_caption([{"name": "x"}])


# --------------------------------------------------------------------------- 5. comparison

@pytest.fixture
def comparison(tmp_path, synth_root):
    """A finished two-arm comparison folder (no training): planted final/best predictions
    and one history row per arm."""
    from augmine.experiments.compare_results import ComparisonDir
    from augmine.runs.rundir import RunDir

    folder = ComparisonDir(tmp_path / "cmp")
    y = np.repeat(np.arange(4), 25)
    arms = [("none", 0.6), ("light", 0.8)]
    folder.path.mkdir()
    folder.spec_path.write_text(json.dumps({
        "arms": [{"name": n, "recipe": n, "strength": None} for n, _ in arms],
        "data": str(synth_root), "config": "tiny.yaml", "epochs": 1, "size": 16}))
    rng = np.random.default_rng(0)
    for name, acc in arms:
        pred = np.where(rng.random(len(y)) < acc, y, (y + 1) % 4)
        probs = np.eye(4, dtype=np.float32)[pred] * 0.7 + 0.075
        folder.predictions_path(name).parent.mkdir(exist_ok=True)
        np.savez(folder.predictions_path(name), y_true=y, final=probs, best=probs,
                 best_epoch=1, best_size=16, final_size=16)
        run = RunDir(folder.run_dir(name))
        run.path.mkdir()
        run.append_history({"stage": "phase-1", "phase": 1, "size": 16, "epoch": 1,
                            "accuracy": acc + 0.1, "val_accuracy": float(np.mean(pred == y))})
    return folder.path


def test_comparison_page_is_a_table_with_the_curves(comparison):
    from augmine.experiments.compare_results import load_results

    results = load_results(comparison)
    at = app_test(run=comparison, page="Recipe comparison")
    no_exception(at)
    assert not at.code                                 # no terminal text in monospace
    df = at.dataframe[0].value
    assert list(df["arm"]) == ["none", "none", "light", "light"]
    assert list(df["model"]) == ["final", "best"] * 2
    top1 = results["metrics"]["final_top1"]["mean"]
    assert df["top-1 %"].tolist()[::2] == pytest.approx([100 * v for v in top1], abs=0.01)
    diff = df["top-1 vs first (pts)"].tolist()
    assert np.isnan(diff[0]) and diff[2] == pytest.approx(100 * (top1[1] - top1[0]), abs=0.01)
    assert {"top-1 95% CI", "macro F1 %", "train-val gap (pts)", "images/s"} <= set(df.columns)
    assert len(at.get("vega_lite_chart")) == 2         # one curve chart per arm
    assert any("bootstrap" in c.value for c in at.caption)


# --------------------------------------------------------------------------- 6. pages by URL

@pytest.mark.parametrize("value,header", [("affinity", "Affinity"),
                                          ("Confusion explorer", "Confusion explorer"),
                                          ("recipe-comparison", "Recipe comparison"),
                                          ("comparison", "Recipe comparison")])
def test_query_parameter_opens_the_page(synth_root, value, header):
    at = app_test(data=synth_root, page=None, query={"page": value})
    no_exception(at)
    assert at.header[0].value == header
    assert at.radio(key="page").value == header


def test_unknown_query_page_is_one_line_and_the_url_follows_the_page(synth_root):
    at = app_test(data=synth_root, page=None, query={"page": "nope"})
    no_exception(at)
    assert at.header[0].value == "Augmentation browser"
    warn = [w.value for w in at.warning if "?page=nope" in w.value]
    assert len(warn) == 1 and "affinity" in warn[0] and "confusion" in warn[0]
    at.radio(key="page").set_value("Affinity").run()
    no_exception(at)
    assert at.query_params["page"] in ("affinity", ["affinity"])


# --------------------------------------------------------------------------- 7. wrong dataset

def test_run_opened_with_another_dataset_warns_naming_the_class(synth_root, tmp_path):
    index = synth_index(synth_root)
    ids = list(index.class_ids)
    matching = make_run(tmp_path / "ok", synth_root, class_ids=ids)
    at = app_test(data=synth_root, run=matching)
    no_exception(at)
    assert not [w for w in at.warning if "does not hold the classes" in w.value]
    other = make_run(tmp_path / "other", synth_root, class_ids=[ids[0], "n99999999"] + ids[2:])
    for page in ("Augmentation browser", "Confusion explorer"):
        at = app_test(data=synth_root, run=other, page=page)
        no_exception(at)
        warn = [w.value for w in at.warning if "does not hold the classes" in w.value]
        assert len(warn) == 1
        assert f"class 2 is {index.class_label(1)} where the run has n99999999" in warn[0]


def test_typed_recipe_path_only_while_the_app_listens_on_this_machine(synth_root):
    import streamlit as st

    from augmine.app.data.recipes import is_loopback

    assert is_loopback(None) and is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    saved = st.get_option("server.address")
    st.config.set_option("server.address", "0.0.0.0")
    try:
        at = app_test(data=synth_root)
    finally:
        st.config.set_option("server.address", saved)
    no_exception(at)
    assert "recipe_typed" not in [t.key for t in at.text_input]
    assert any("Typing a recipe path is off" in c.value and "0.0.0.0" in c.value
               for c in at.caption)


def test_recipe_choices_name_each_role_of_the_runs_recipes(synth_root, tmp_path):
    from augmine.app.data.recipes import recipe_choices
    from augmine.core.runtime import recipes_dir

    light = (recipes_dir() / "light.yaml").resolve()
    run = make_run(tmp_path / "run", synth_root, light)
    (run / "plans").mkdir()
    gentle = run / "plans" / "round-1-gentle.yaml"
    gentle.write_text("name: g\ntransforms:\n  - {transform: HorizontalFlip, p: 0.5}\n"
                      "classes:\n  x: {strength: 0.5}\n")
    labels, default = recipe_choices(run, tmp_path / "empty-folder")
    assert labels[str(light)] == "run phase 1 (16 px), run phase 2 (32 px), built-in: light.yaml"
    assert labels[str(gentle.resolve())] == "run round-1 gentle (32 px): round-1-gentle.yaml"
    assert list(labels)[:2] == [str(light), str(gentle.resolve())] and default == str(light)
    labels, default = recipe_choices(None, None)
    assert default == str((recipes_dir() / "tiny-imagenet-14.yaml").resolve())
    assert all(v.startswith("built-in: ") for v in labels.values())
