"""Recipe files -> albumentations: loading, errors, building at phase sizes, export, CLI, preview."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from augmine.core.errors import AugmineError
from augmine.core.runtime import (available_configs, available_recipes, recipes_dir, resolve_config,
                                  resolve_recipe)
from augmine.augment.compose import build_compose, export_recipe
from augmine.augment.recipes import as_recipe, load_recipe, parse_recipe

SIZES = (16, 32, 64)


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path) -> str:
    with pytest.raises(AugmineError) as exc:
        load_recipe(path)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


# --------------------------------------------------------------------------- built-in recipes

@pytest.mark.parametrize("name,count", [("tiny-imagenet-14", 14), ("light", 4), ("none", 0),
                                        ("trivial-augment", 3)])
def test_builtin_recipes_load_with_a_reason_for_every_transform(name, count):
    recipe = load_recipe(name)
    assert recipe.path == recipes_dir() / f"{name}.yaml"
    assert len(recipe.transforms) == count
    for entry in recipe.transforms:
        assert "p" in entry and len(entry.get("why", "")) > 20
        assert any(ch.isdigit() for ch in entry["why"]), entry["why"]  # quotes a number


def test_trivial_augment_applies_one_operation_per_image_and_is_seeded():
    """TrivialAugment-Wide: 13 operations plus identity, one per image; ColorJitter (which
    keeps plain functions in ``.transforms``) reseeds like any other transform."""
    import numpy as np

    recipe = load_recipe("trivial-augment")
    ops = recipe.transforms[2]
    assert ops["transform"] == "OneOf" and len(ops["transforms"]) == 13
    assert abs(ops["p"] - 13 / 14) < 1e-5
    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    runs = []
    for _ in range(2):
        compose = build_compose(recipe, 32, seed=7)
        runs.append([compose(image=img)["image"] for _ in range(20)])
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
    assert len({a.tobytes() for a in runs[0]}) > 15     # a fresh draw for nearly every image


def test_resolve_recipe_by_name_suffix_and_path(tmp_path):
    assert resolve_recipe("light") == resolve_recipe("light.yaml") == recipes_dir() / "light.yaml"
    own = write(tmp_path, "name: x\ntransforms: []\n")
    assert resolve_recipe(own) == own.resolve()
    with pytest.raises(AugmineError, match="did you mean light"):
        resolve_recipe("lihgt")


def test_builtin_files_live_in_the_top_level_recipes_folder_and_are_sorted_by_kind():
    assert recipes_dir() == Path(__file__).resolve().parents[1] / "recipes"
    assert {"light", "none", "tiny-imagenet-14", "trivial-augment"} <= set(available_recipes())
    assert {"cpu-small", "cpu-20", "tiny-imagenet-densenet"} <= set(available_configs())
    assert not set(available_recipes()) & set(available_configs())


def test_resolve_config_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config("cpu-small") == resolve_config("cpu-small.yaml") \
        == recipes_dir() / "cpu-small.yaml"
    own = write(tmp_path, "name: mine\n", "cpu-small.yaml")
    assert resolve_config("cpu-small.yaml") == own.resolve()       # a real file wins
    assert resolve_config(str(own)) == own.resolve()
    for bad, expect in [("cpu-smal", "did you mean cpu-small"),
                        ("recipes/cpu-small.yaml", "is named 'cpu-small': give the name alone"),
                        ("light", "is an augmentation recipe, not a training config"),
                        (str(tmp_path), "is a folder")]:
        with pytest.raises(AugmineError, match=expect) as exc:
            resolve_config(bad)
        assert "\n" not in str(exc.value)


def test_as_recipe_passes_recipes_through_and_loads_names():
    rec = load_recipe("light")
    assert as_recipe(rec) is rec
    assert as_recipe("light").transforms == rec.transforms


def test_none_recipe_only_resizes_with_area_interpolation():
    import cv2

    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = build_compose("none", 16)(image=img)["image"]
    np.testing.assert_array_equal(out, cv2.resize(img, (16, 16), interpolation=cv2.INTER_AREA))


# --------------------------------------------------------------------------- errors

BAD_CASES = {
    "unknown transform": (
        "name: x\ntransforms:\n  - {transform: HorizontalFlip, p: 0.5}\n"
        "  - {transform: GaussNoize, p: 0.5}\n",
        ["r.yaml: transform 2", "unknown transform 'GaussNoize'", "did you mean GaussNoise?"]),
    "bad argument": (
        "name: x\ntransforms:\n  - {transform: GaussNoise, p: 0.5, std_range: [0.5, 0.1]}\n",
        ["r.yaml: transform 1 (GaussNoise)", "std_range: First value should be less than the "
         "second value", "fix the value"]),
    "bad p": (
        "name: x\ntransforms:\n  - {transform: HorizontalFlip, p: 1.5}\n",
        ["transform 1 (HorizontalFlip)", "p: Input should be less than or equal to 1"]),
    "misspelt argument": (
        "name: x\ntransforms:\n  - {transform: GaussNoise, p: 0.5, std_rnge: [0.01, 0.02]}\n",
        ["transform 1 (GaussNoise)", "unknown argument 'std_rnge' (did you mean 'std_range'?)"]),
    "missing p": (
        "name: x\ntransforms:\n  - transform: HorizontalFlip\n    why: symmetric\n",
        ["transform 1 (HorizontalFlip)", "missing 'p:'", "silently use 0.5"]),
    "missing transform": (
        "name: x\ntransforms:\n  - {p: 0.5}\n",
        ["transform 1", "missing 'transform:'"]),
    "size given": (
        "name: x\ntransforms:\n  - {transform: RandomResizedCrop, p: 1, size: [64, 64]}\n",
        ["transform 1 (RandomResizedCrop)", "remove size", "from the training phase"]),
    "dtype changing": (
        "name: x\ntransforms:\n  - {transform: Normalize, p: 1}\n",
        ["transform 1 (Normalize)", "float32", "needs uint8"]),
    "nested child": (
        "name: x\ntransforms:\n  - {transform: HorizontalFlip, p: 0.5}\n"
        "  - transform: OneOf\n    p: 0.5\n    transforms:\n"
        "      - {transform: Blur, p: 1}\n      - {transform: Sharpn, p: 1}\n",
        ["transform 2.2", "unknown transform 'Sharpn'", "did you mean Sharpen?"]),
    "unknown top-level key": (
        "name: x\ntransfroms: []\n", ["r.yaml: unknown key 'transfroms'", "did you mean 'transforms'?"]),
    "transforms not a list": (
        "name: x\ntransforms: {transform: HorizontalFlip}\n", ["'transforms:' must be a list"]),
    "YAML syntax": (
        "name: x\ntransforms:\n  - transform: HorizontalFlip\n    p: [0.5\n",
        ["YAML syntax error", "check indentation"]),
    "empty file": ("", ["is empty"]),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_recipe_errors_are_one_line_with_file_entry_and_fix(tmp_path, case):
    text, expected = BAD_CASES[case]
    path = write(tmp_path, text)
    msg = error_of(path)
    assert str(path) in msg
    for part in expected:
        assert part in msg, (part, msg)


def test_yaml_syntax_error_points_at_line_and_column(tmp_path):
    path = write(tmp_path, "name: x\ntransforms:\n  - transform: Blur\n   p: 1\n")
    msg = error_of(path)
    assert msg.startswith(f"{path}:4:")  # file:line:column of the bad indentation
    assert msg.split(":")[2].isdigit()


def test_build_compose_rejects_bad_size():
    with pytest.raises(AugmineError, match="positive whole number"):
        build_compose("none", 0)


# --------------------------------------------------------------------------- building

@pytest.fixture(scope="module")
def real_images(real_index):
    """A few colour and every grayscale original of the real sample (as RGB arrays)."""
    from augmine.data.dataset import load_images, verify_index

    gray = verify_index(real_index).grayscale_paths
    assert gray, "the real sample is known to hold grayscale JPEGs"
    paths = list(real_index.val.paths[:6]) + gray[:6]
    return load_images(paths), len(gray[:6])


def forced(recipe_name: str) -> dict:
    """The recipe with every transform at p=1, so each one runs on every image."""
    recipe = load_recipe(recipe_name)
    return {"name": recipe.name + "-p1",
            "transforms": [dict(e, p=1.0) for e in recipe.transforms]}


@pytest.mark.parametrize("size", SIZES)
def test_tiny_imagenet_14_keeps_shape_and_dtype_on_real_images(real_images, size):
    images, n_gray = real_images
    assert all(img.shape[2] == 3 for img in images[-n_gray:])  # read_image made gray 3-channel
    for recipe in (load_recipe("tiny-imagenet-14"), parse_recipe(forced("tiny-imagenet-14"))):
        compose = build_compose(recipe, size, seed=1)
        for img in images:
            for _ in range(2):
                out = compose(image=img)["image"]
                assert out.shape == (size, size, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("recipe", ["tiny-imagenet-14", "light", "none"])
def test_any_input_size_gives_phase_size(recipe):
    rng = np.random.default_rng(0)
    compose = build_compose(parse_recipe(forced(recipe)), 32, seed=0)
    for h, w in [(64, 64), (37, 50), (120, 90), (12, 20)]:
        out = compose(image=rng.integers(0, 256, (h, w, 3), dtype=np.uint8))["image"]
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_fixed_size_crop_pads_small_inputs_and_skips_extra_resize():
    import albumentations as A

    compose = build_compose(parse_recipe(
        {"name": "c", "transforms": [{"transform": "RandomCrop", "p": 1.0}]}), 48)
    assert not any(isinstance(t, A.Resize) for t in compose.transforms)  # crop sets the size
    out = compose(image=np.zeros((30, 60, 3), np.uint8))["image"]
    assert out.shape == (48, 48, 3)


def test_same_seed_same_output_other_seed_differs(real_images):
    images, _ = real_images
    a = [build_compose("tiny-imagenet-14", 32, seed=7)(image=img)["image"] for img in images]
    b = [build_compose("tiny-imagenet-14", 32, seed=7)(image=img)["image"] for img in images]
    c = [build_compose("tiny-imagenet-14", 32, seed=8)(image=img)["image"] for img in images]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


# --------------------------------------------------------------------------- export round trip

@pytest.mark.parametrize("suffix,fmt", [(".json", "json"), (".yaml", "yaml")])
def test_round_trip_recipe_compose_export_load(tmp_path, suffix, fmt):
    import albumentations as A

    compose = build_compose("tiny-imagenet-14", 32)
    out = export_recipe("tiny-imagenet-14", tmp_path / f"aug{suffix}", size=32)
    loaded = A.load(str(out), data_format=fmt)
    assert A.to_dict(loaded)["transform"] == A.to_dict(compose)["transform"]
    names = [t.__class__.__name__ for t in loaded.transforms]
    assert names[0] == "RandomResizedCrop" and names[-1] == "Resize" and len(names) == 15
    assert loaded.transforms[0].size == (32, 32)
    img = np.zeros((64, 64, 3), np.uint8)
    assert loaded(image=img)["image"].shape == (32, 32, 3)


# --------------------------------------------------------------------------- preview

def test_preview_grid_is_seeded_and_accepts_name_or_wnid(real_index):
    from augmine.augment.preview import preview_grid

    a = preview_grid(real_index, "light", "teddy bear", n=4, size=16, seed=3, per_image=2)
    b = preview_grid(real_index, "light", "n04399382", n=4, size=16, seed=3, per_image=2)
    c = preview_grid(real_index, "light", "teddy bear", n=4, size=16, seed=4, per_image=2)
    assert a.dtype == np.uint8 and a.ndim == 3
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(AugmineError, match="did you mean 'teddy bear'"):
        preview_grid(real_index, "light", "teddy bare", n=2)


def test_preview_upscales_with_nearest_neighbour():
    from augmine.augment.preview import render_grid

    orig = np.zeros((64, 64, 3), np.uint8)
    aug = np.zeros((16, 16, 3), np.uint8)
    aug[::2, ::2] = 255  # a checkerboard-like pattern survives only without smoothing
    grid = render_grid([orig], [[aug]], ["x"], "t", size=16)
    values = np.unique(grid[grid.shape[0] // 2:, 128 + 2:])
    assert set(values.tolist()) <= {0, 235, 255}  # no in-between greys from interpolation


# --------------------------------------------------------------------------- CLI

@pytest.fixture()
def runner():
    return CliRunner()


def invoke(runner, args):
    from augmine.cli import cli

    return runner.invoke(cli, args, catch_exceptions=False)


def test_cli_validate_ok_and_error_line_without_traceback(runner, tmp_path):
    res = invoke(runner, ["recipe", "validate", "tiny-imagenet-14"])
    assert res.exit_code == 0
    assert "OK" in res.output and "14 transforms" in res.output
    bad = write(tmp_path, BAD_CASES["unknown transform"][0])
    res = invoke(runner, ["recipe", "validate", str(bad)])
    assert res.exit_code != 0
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:")
    assert "did you mean GaussNoise?" in lines[0] and "Traceback" not in res.output


def test_cli_show_prints_table(runner):
    res = invoke(runner, ["recipe", "show", "light"])
    assert res.exit_code == 0
    assert "transform" in res.output and "why" in res.output
    for name in ("RandomResizedCrop", "HorizontalFlip", "RandomBrightnessContrast", "ToGray"):
        assert name in res.output
    assert "scale=[0.5, 1.0]" in res.output


def test_cli_preview_writes_png(runner, tmp_path, real_root):
    import cv2

    out = tmp_path / "grid.png"
    res = invoke(runner, ["recipe", "preview", "tiny-imagenet-14", "--data", str(real_root),
                          "--class", "teddy bear", "-n", "6", "--size", "32", "-o", str(out)])
    assert res.exit_code == 0, res.output
    img = cv2.imread(str(out))
    assert img is not None
    assert f"{img.shape[1]}x{img.shape[0]} px" in res.output
    # 2 cells (original + 3 augmented) of 128 px tiles side by side
    assert img.shape[1] >= 4 * 128 and img.shape[0] >= 128


def test_cli_preview_unknown_class_is_one_line(runner, tmp_path, real_root):
    res = invoke(runner, ["recipe", "preview", "light", "--data", str(real_root), "--class",
                          "chihuahua dog", "-o", str(tmp_path / "g.png")])
    assert res.exit_code != 0
    assert res.output.startswith("Error:") and "did you mean" in res.output
    assert not (tmp_path / "g.png").exists()


def test_cli_export_then_albumentations_load(runner, tmp_path):
    import albumentations as A

    out = tmp_path / "light.json"
    res = invoke(runner, ["recipe", "export", "light", "--format", "albumentations",
                          "--size", "16", "-o", str(out)])
    assert res.exit_code == 0 and "albumentations.load" in res.output
    assert json.loads(out.read_text())["transform"]["__class_fullname__"] == "Compose"
    loaded = A.load(str(out))
    assert loaded(image=np.zeros((64, 64, 3), np.uint8))["image"].shape == (16, 16, 3)


# --------------------------------------------------------------------------- strength

def _epoch(feed) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in feed])
    return np.concatenate(xs), np.concatenate(ys)


def test_strength_zero_gives_the_same_batches_as_no_augmentation(synth_index):
    from augmine.feed.feeds import train_dataset
    from augmine.augment.compose import scale_recipe

    zero = scale_recipe("tiny-imagenet-14", 0)
    assert zero.strength == 0 and zero.transforms == []
    x0, y0 = _epoch(train_dataset(synth_index, zero, 32, 64, seed=5, workers=0))
    xn, yn = _epoch(train_dataset(synth_index, "none", 32, 64, seed=5, workers=0))
    x1, _ = _epoch(train_dataset(synth_index, "tiny-imagenet-14", 32, 64, seed=5, workers=0))
    np.testing.assert_array_equal(y0, yn)
    np.testing.assert_array_equal(x0, xn)
    assert not np.array_equal(x1, xn)          # the recipe as written does change them


def test_strength_scales_probabilities_and_ranges_as_documented():
    from augmine.augment.compose import scale_recipe

    def by_name(recipe):
        return {e["transform"]: e for e in recipe.transforms}

    half = by_name(scale_recipe("tiny-imagenet-14", 0.5))
    crop = half["RandomResizedCrop"]
    assert crop["p"] == 1.0                             # the size-setting crop stays on
    assert crop["scale"] == [0.675, 1.0]                # 1 - (1 - 0.35) * 0.5: toward full frame
    assert crop["ratio"] == pytest.approx([0.75 ** 0.5, (4 / 3) ** 0.5], abs=1e-6)  # default
    assert half["HorizontalFlip"]["p"] == 0.25          # p * s
    assert half["RandomBrightnessContrast"]["brightness_limit"] == [-0.06, 0.06]
    assert half["Affine"]["rotate"] == [-6.0, 6.0] and half["Affine"]["scale"] == [1.0, 1.0]
    assert half["RandomGamma"]["gamma_limit"] == [92.5, 107.5]      # toward gamma 1
    assert half["ImageCompression"]["quality_range"] == [75, 90]    # toward quality 100
    assert half["CLAHE"]["clip_limit"] == [1.0, 2.0]                # toward clip 1
    assert half["CoarseDropout"]["num_holes_range"] == [1, 2]       # counts as written
    assert half["CoarseDropout"]["hole_height_range"] == [0.05, 0.125]

    double = by_name(scale_recipe("tiny-imagenet-14", 2))
    assert double["HorizontalFlip"]["p"] == 1.0                     # min(1, p * s)
    assert double["Affine"]["p"] == 0.8
    assert double["RandomResizedCrop"]["scale"] == [0.01, 1.0]      # clipped, still valid
    assert double["ImageCompression"]["quality_range"] == [1, 60]
    # an argument the recipe leaves out is scaled from albumentations' default
    noise = parse_recipe({"name": "n", "transforms": [{"transform": "GaussNoise", "p": 0.4}]})
    scaled = scale_recipe(noise, 0.5).transforms[0]
    assert scaled["p"] == 0.2 and scaled["std_range"] == [0.1, 0.22]
    assert scale_recipe("light", 1) is not None and scale_recipe("light", 1).strength == 1.0


def test_strength_changes_images_more_as_it_grows(synth_index):
    from augmine.feed.feeds import train_dataset
    from augmine.augment.compose import scale_recipe

    xn, _ = _epoch(train_dataset(synth_index, "none", 32, 100, seed=2, workers=0))
    change = []
    for s in (0.25, 1.0, 2.0):
        x, _ = _epoch(train_dataset(synth_index, scale_recipe("tiny-imagenet-14", s), 32, 100,
                                    seed=2, workers=0))
        change.append(float(np.abs(x.astype(np.int16) - xn).mean()))
    assert change[0] < change[1] < change[2], change


@pytest.mark.parametrize("bad", [-0.5, "strong", float("nan"), True])
def test_bad_strength_is_a_one_line_error(bad):
    from augmine.augment.compose import scale_recipe

    with pytest.raises(AugmineError, match="strength"):
        scale_recipe("light", bad)


def test_a_config_phase_names_a_strength_and_the_trainer_uses_it(tmp_path):
    from augmine.runs.config import load_config
    from augmine.train.phases import _phase_recipe

    cfg = load_config({"phases": [{"size": 16, "epochs": 1, "recipe": "light"},
                                  {"size": 32, "epochs": 1, "recipe": "light",
                                   "strength": 0.5}]})
    assert cfg.phases[0].strength is None and "strength" not in cfg.to_dict()["phases"][0]
    assert cfg.to_dict()["phases"][1]["strength"] == 0.5
    assert _phase_recipe(cfg, cfg.phases[0]) is cfg.recipe(cfg.phases[0].recipe)
    assert _phase_recipe(cfg, cfg.phases[1]).strength == 0.5
    with pytest.raises(AugmineError, match=r"phases\[1\].strength"):
        load_config({"phases": [{"size": 16, "epochs": 1, "strength": -1}]})
