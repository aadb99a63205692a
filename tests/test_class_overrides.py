"""Per-class overrides in recipes (``classes:``) and the sanity bounds of recipe values:
parsing, resolving against a dataset, one-line errors, and what the feed gives each class."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from augmine.core.errors import AugmineError
from augmine.augment.compose import (build_compose, class_overrides, recipe_for_class,
                                     reseed_compose, scale_recipe)
from augmine.augment.recipes import dump_recipe, load_recipe, parse_recipe

GRAY = [{"transform": "ToGray", "p": 1.0}]
# the generated dataset's classes (augmine.data.synth): 2 = "striped green square", 4 = "blue triangle"
GREEN, BLUE = 2, 4


def write(tmp_path, doc: dict, name: str = "per-class.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def recipe_doc(classes: dict | None = None, transforms=None) -> dict:
    doc = {"name": "per-class", "transforms": transforms or [
        {"transform": "RandomResizedCrop", "p": 1.0, "scale": [0.35, 1.0]},
        {"transform": "OneOf", "p": 0.5, "transforms": [{"transform": "ToGray", "p": 1.0},
                                                       {"transform": "ChannelShuffle", "p": 1.0}]},
        {"transform": "HorizontalFlip", "p": 0.5}]}
    if classes is not None:
        doc["classes"] = classes
    return doc


def epoch(feed) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in feed])
    return np.concatenate(xs), np.concatenate(ys)


def is_gray(images: np.ndarray) -> np.ndarray:
    """(N,) True where an (N, H, W, 3) image has R == G == B everywhere."""
    return np.all((images[..., 0] == images[..., 1]) & (images[..., 1] == images[..., 2]),
                  axis=(1, 2))


# --------------------------------------------------------------------------- parsing

def test_overrides_are_read_and_resolved_by_id_and_by_name(tmp_path, synth_index):
    path = write(tmp_path, recipe_doc({
        "Blue Triangle": {"strength": 0.3},                       # a name, any case
        synth_index.class_ids[GREEN]: {"without": ["RandomResizedCrop", "ToGray"],
                                       "why": "affinity: crop costs this class 18 points"}}))
    recipe = load_recipe(path)
    assert recipe.classes[synth_index.class_ids[GREEN]]["why"].startswith("affinity")
    resolved = class_overrides(recipe, synth_index.class_ids, synth_index.class_names)
    assert resolved == {BLUE: {"strength": 0.3},
                        GREEN: {"without": ["RandomResizedCrop", "ToGray"],
                                "why": "affinity: crop costs this class 18 points"}}
    again = parse_recipe(yaml.safe_load(dump_recipe(recipe)), "dumped")    # round trip
    assert again.classes == recipe.classes


BAD = {
    "unknown override key": ({"Blue Triangle": {"strenght": 0.3}},
                             ["'Blue Triangle'", "did you mean 'strength'?"]),
    "negative strength": ({"Blue Triangle": {"strength": -1}}, ["strength -1", ">= 0"]),
    "text strength": ({"Blue Triangle": {"strength": "weak"}}, ["strength 'weak'", ">= 0"]),
    "unknown transform": ({"Blue Triangle": {"without": ["RandomResizeCrop"]}},
                          ["'RandomResizeCrop' is not in the recipe",
                           "did you mean 'RandomResizedCrop'?"]),
    "transform the recipe lacks": ({"Blue Triangle": {"without": ["Blur"]}},
                                   ["'Blur' is not in the recipe"]),
    "without is not a list": ({"Blue Triangle": {"without": "ToGray"}},
                              ["without: [RandomResizedCrop]"]),
    "override is not a mapping": ({"Blue Triangle": 0.3}, ["{strength: 0.3}"]),
    "classes is a list": (["Blue Triangle"], ["'classes:' must map"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_overrides_are_one_line_errors_naming_file_class_and_fix(tmp_path, case):
    classes, expected = BAD[case]
    path = write(tmp_path, recipe_doc(classes))
    with pytest.raises(AugmineError) as err:
        load_recipe(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    for part in expected:
        assert part in message, message


def test_an_unknown_class_is_a_one_line_error_with_the_closest_names(tmp_path, synth_index):
    recipe = load_recipe(write(tmp_path, recipe_doc({"blue triangel": {"strength": 0.5}})))
    with pytest.raises(AugmineError) as err:
        class_overrides(recipe, synth_index.class_ids, synth_index.class_names)
    message = str(err.value)
    assert "\n" not in message and "unknown class 'blue triangel'" in message
    assert "did you mean 'blue triangle'" in message
    twice = load_recipe(write(tmp_path, recipe_doc({
        "blue triangle": {"strength": 0.5}, synth_index.class_ids[BLUE]: {"strength": 0}}),
        "twice.yaml"))
    with pytest.raises(AugmineError, match="both name class blue triangle"):
        class_overrides(twice, synth_index.class_ids, synth_index.class_names)


def test_class_strength_multiplies_the_phase_strength_and_without_reaches_into_containers():
    recipe = parse_recipe(recipe_doc({"a": {"strength": 0.4, "without": ["ToGray"]}}))
    phase = scale_recipe(recipe, 0.5)
    assert phase.classes == recipe.classes                        # overrides survive scaling
    mine = recipe_for_class(phase, recipe.classes["a"])
    assert mine.strength == pytest.approx(0.2) and mine.classes == {}
    flip = {e["transform"]: e for e in mine.transforms}["HorizontalFlip"]
    assert flip["p"] == pytest.approx(0.5 * 0.2)                  # as scale_recipe(recipe, 0.2)
    one_of = {e["transform"]: e for e in mine.transforms}["OneOf"]
    assert [c["transform"] for c in one_of["transforms"]] == ["ChannelShuffle"]
    alone = parse_recipe(recipe_doc({"a": {"without": ["ToGray", "ChannelShuffle"]}}))
    names = [e["transform"] for e in recipe_for_class(alone, alone.classes["a"]).transforms]
    assert names == ["RandomResizedCrop", "HorizontalFlip"]       # the emptied OneOf goes too


# --------------------------------------------------------------------------- the feed

def old_way_epoch(index, recipe, size: int, batch_size: int, seed: int) -> np.ndarray:
    """Epoch 0 of ``train_dataset(index, recipe, size, batch_size, seed=seed)`` as the feed
    made it before class overrides: one Compose for every image, reseeded per batch with
    ``2 * batch seed`` (the order and seeds from ``default_rng([seed, epoch])``)."""
    from augmine.data.dataset import read_image
    from augmine.feed.sampling import epoch_order

    sp = index.split("train")
    rng = np.random.default_rng([seed, 0])
    order = epoch_order(np.asarray(sp.labels), None, rng)
    starts = range(0, len(order), batch_size)
    seeds = rng.integers(0, 2**62, len(starts))
    compose = build_compose(recipe, size)
    out = []
    for start, batch_seed in zip(starts, seeds):
        reseed_compose(compose, int(batch_seed) << 1)
        out += [compose(image=read_image(sp.paths[i]))["image"]
                for i in order[start:start + batch_size]]
    return np.stack(out)


def test_other_classes_get_the_same_batches_as_without_overrides(tmp_path, synth_index):
    from augmine.feed.feeds import train_dataset

    plain = recipe_doc()
    expected = old_way_epoch(synth_index, parse_recipe(plain), 24, 64, seed=3)
    x, y = epoch(train_dataset(synth_index, parse_recipe(plain), 24, 64, seed=3, workers=0))
    np.testing.assert_array_equal(x, expected)           # no classes: byte-identical to before
    over = parse_recipe(recipe_doc({"blue triangle": {"strength": 0.3},
                                    "striped green square": {"without": ["RandomResizedCrop"]}}))
    xo, yo = epoch(train_dataset(synth_index, over, 24, 64, seed=3, workers=0))
    np.testing.assert_array_equal(yo, y)
    others = ~np.isin(y, [GREEN, BLUE])
    np.testing.assert_array_equal(xo[others], expected[others])
    for label in (GREEN, BLUE):
        assert not np.array_equal(xo[y == label], expected[y == label])


def test_without_switches_a_transform_off_for_that_class_only(synth_index):
    from augmine.feed.feeds import train_dataset

    recipe = parse_recipe({"name": "gray", "transforms": GRAY,
                           "classes": {"striped green square": {"without": ["ToGray"]}}})
    x, y = epoch(train_dataset(synth_index, recipe, 16, 50, seed=0, workers=0))
    gray = is_gray(x)
    assert not gray[y == GREEN].any()                    # coloured, every image
    assert gray[y != GREEN].all()                        # every other class gray


def test_strength_zero_leaves_that_class_unaugmented(synth_index):
    from augmine.feed.feeds import train_dataset

    recipe = parse_recipe(recipe_doc({"blue triangle": {"strength": 0}}))
    x, y = epoch(train_dataset(synth_index, recipe, 24, 64, seed=1, workers=0))
    xn, yn = epoch(train_dataset(synth_index, "none", 24, 64, seed=1, workers=0))
    np.testing.assert_array_equal(y, yn)
    np.testing.assert_array_equal(x[y == BLUE], xn[y == BLUE])
    assert not np.array_equal(x[y != BLUE], xn[y != BLUE])


def test_the_plans_recipe_wins_for_its_weak_classes(tmp_path, synth_index):
    from augmine.analysis.plans import OversamplingPlan
    from augmine.feed.feeds import train_dataset

    recipe = parse_recipe({"name": "gray", "transforms": GRAY, "classes": {
        "blue triangle": {"without": ["ToGray"]}, "striped green square": {"without": ["ToGray"]}}})
    strong = write(tmp_path, {"name": "strong", "transforms": GRAY}, "strong.yaml")
    plan = OversamplingPlan(np.ones(synth_index.num_classes), [BLUE], synth_index.class_ids,
                            synth_index.class_names, recipe=str(strong))
    x, y = epoch(train_dataset(synth_index, recipe, 16, 50, plan=plan, seed=0, workers=0))
    gray = is_gray(x)
    assert gray[y == BLUE].all()                         # the plan's recipe, not the override
    assert not gray[y == GREEN].any()                    # the override still holds elsewhere


def test_a_phase_strength_keeps_the_overrides(tmp_path):
    from augmine.runs.config import load_config
    from augmine.train.phases import _phase_recipe

    path = write(tmp_path, recipe_doc({"blue triangle": {"strength": 0.5}}))
    cfg = load_config({"phases": [{"size": 16, "epochs": 1, "recipe": str(path),
                                   "strength": 0.5}]})
    recipe = _phase_recipe(cfg, cfg.phases[0])
    assert recipe.strength == 0.5 and recipe.classes == {"blue triangle": {"strength": 0.5}}
    assert recipe_for_class(recipe, recipe.classes["blue triangle"]).strength == 0.25


# --------------------------------------------------------------------------- sanity bounds

def test_a_brightness_limit_beyond_the_scale_is_a_one_line_error(tmp_path):
    path = write(tmp_path, {"name": "bright", "transforms": [
        {"transform": "RandomBrightnessContrast", "p": 0.5, "brightness_limit": 2.0}]})
    with pytest.raises(AugmineError) as err:
        load_recipe(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: transform 1")
    assert "brightness_limit 2.0 is outside [-1, 1]" in message
    assert "e.g. brightness_limit: 1" in message


@pytest.mark.parametrize("entry, arg", [
    ({"transform": "OneOf", "p": 2, "transforms": GRAY}, "p 2"),
    ({"transform": "HueSaturationValue", "p": 0.5, "hue_shift_limit": [-300, 20]},
     "hue_shift_limit"),
    ({"transform": "ColorJitter", "p": 0.5, "hue": 0.9}, "hue 0.9"),
])
def test_values_albumentations_accepts_but_that_make_no_sense_are_rejected(entry, arg):
    with pytest.raises(AugmineError, match=f"{arg}.* is outside"):
        parse_recipe({"name": "x", "transforms": [entry]}, "x.yaml")


def test_strength_clips_to_the_sanity_bounds():
    from augmine.augment.recipes import SANITY_BOUNDS
    from augmine.augment.compose import STRENGTH_RULES

    bright = parse_recipe({"name": "b", "transforms": [
        {"transform": "RandomBrightnessContrast", "p": 0.5, "brightness_limit": 0.6}]})
    assert scale_recipe(bright, 3).transforms[0]["brightness_limit"] == 1.0   # loads, clipped
    for arg, (lo, hi, _) in SANITY_BOUNDS.items():
        if arg in STRENGTH_RULES:
            _, rule_lo, rule_hi, _ = STRENGTH_RULES[arg]
            assert rule_lo is not None and rule_lo >= lo and rule_hi is not None and rule_hi <= hi


# --------------------------------------------------------------------------- CLI

def test_cli_show_validate_and_export_handle_overrides(tmp_path):
    from augmine.cli import cli

    path = write(tmp_path, recipe_doc({"blue triangle": {"strength": 0.3, "why": "hurt by crops"},
                                       "s0000002": {"without": ["ToGray"]}}))
    runner = CliRunner()
    shown = runner.invoke(cli, ["recipe", "show", str(path)], catch_exceptions=False)
    assert shown.exit_code == 0
    assert "blue triangle: strength 0.3  (hurt by crops)" in shown.output
    assert "s0000002: without ToGray" in shown.output
    ok = runner.invoke(cli, ["recipe", "validate", str(path)], catch_exceptions=False)
    assert ok.exit_code == 0 and "2 class overrides" in ok.output
    out = tmp_path / "export.json"
    exported = runner.invoke(cli, ["recipe", "export", str(path), "-o", str(out)],
                             catch_exceptions=False)
    assert exported.exit_code == 0 and out.is_file()
    assert "2 class overrides are not in the file" in exported.output
