"""Recipe files -> albumentations: loading, errors, building at phase sizes, export, CLI, preview."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from augmine.errors import AugmineError
from augmine.recipes import (as_recipe, available_configs, available_recipes, build_compose,
                             export_recipe, load_recipe, parse_recipe, recipes_dir,
                             resolve_config, resolve_recipe)

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

@pytest.mark.parametrize("name,count", [("tiny-imagenet-14", 14), ("light", 4), ("none", 0)])
def test_builtin_recipes_load_with_a_reason_for_every_transform(name, count):
    recipe = load_recipe(name)
    assert recipe.path == recipes_dir() / f"{name}.yaml"
    assert len(recipe.transforms) == count
    for entry in recipe.transforms:
        assert "p" in entry and len(entry.get("why", "")) > 20
        assert any(ch.isdigit() for ch in entry["why"]), entry["why"]  # quotes a number


def test_resolve_recipe_by_name_suffix_and_path(tmp_path):
    assert resolve_recipe("light") == resolve_recipe("light.yaml") == recipes_dir() / "light.yaml"
    own = write(tmp_path, "name: x\ntransforms: []\n")
    assert resolve_recipe(own) == own.resolve()
    with pytest.raises(AugmineError, match="did you mean light"):
        resolve_recipe("lihgt")


def test_builtin_files_live_inside_the_package_and_are_sorted_by_kind():
    import augmine

    assert recipes_dir().parent == Path(augmine.__file__).resolve().parent
    assert {"light", "none", "tiny-imagenet-14"} <= set(available_recipes())
    assert {"cpu-small", "tiny-imagenet-densenet"} <= set(available_configs())
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
    from augmine.dataset import load_images, verify_index

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
    from augmine.preview import preview_grid

    a = preview_grid(real_index, "light", "teddy bear", n=4, size=16, seed=3, per_image=2)
    b = preview_grid(real_index, "light", "n04399382", n=4, size=16, seed=3, per_image=2)
    c = preview_grid(real_index, "light", "teddy bear", n=4, size=16, seed=4, per_image=2)
    assert a.dtype == np.uint8 and a.ndim == 3
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(AugmineError, match="did you mean 'teddy bear'"):
        preview_grid(real_index, "light", "teddy bare", n=2)


def test_preview_upscales_with_nearest_neighbour():
    from augmine.preview import render_grid

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
