"""Affinity per class and transform, the tailor rule and the tailored recipe."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from augmine.train.affinity import WHOLE, affinity_table, per_image_drops, tailor_overrides
from augmine.cli import cli
from augmine.augment.recipes import load_recipe

COLUMNS = ["RandomResizedCrop", "HorizontalFlip", WHOLE]


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def planted_drops(n_classes=6, n=50, base=(0.06, 0.02, 0.08), seed=0, plant=None):
    """Per-image 0/1 drops per class with rates ``base`` per column; ``plant`` = {class:
    {column: rate}} overrides."""
    rng = np.random.default_rng(seed)
    out = []
    for c in range(n_classes):
        rates = list(base)
        for k, r in (plant or {}).get(c, {}).items():
            rates[k] = r
        out.append((rng.random((n, len(rates))) < rates).astype(float))
    return out


# --------------------------------------------------------------------------- the pure rule

def test_planted_transform_drop_switches_that_transform_off_for_that_class():
    ids = [f"n{c:08d}" for c in range(6)]
    for seed in range(10):
        out = tailor_overrides(planted_drops(seed=seed, plant={2: {0: 0.5}}), ids, COLUMNS,
                               samples=500)
        assert out[ids[2]]["without"] == ["RandomResizedCrop"], (seed, out)
        why = out[ids[2]]["why"]
        assert why.startswith("affinity: ") and why.endswith("for the others")
        assert re.search(r"RandomResizedCrop costs this class \d+ points \[\d+, \d+\] against "
                         r"\d+ \[\d+, \d+\] for the others", why), why
        assert not any("RandomResizedCrop" in e.get("without", ()) for k, e in out.items()
                       if k != ids[2]), (seed, out)


def test_noise_gets_no_overrides():
    """Pure noise (no class differs): over 20 simulated data sets of 6 classes x 3 columns
    (360 cells) at most 3 cells are picked by chance (the rule tests every cell at 95%
    with no correction for multiple tests; the margin keeps chance picks rare)."""
    picked = 0
    for seed in range(20):
        out = tailor_overrides(planted_drops(seed=seed), list("abcdef"), COLUMNS, samples=500)
        picked += sum(len(e.get("without", [])) + ("strength" in e) for e in out.values())
    assert picked <= 3


def test_whole_recipe_drop_gives_strength_and_margin_is_honoured():
    drops = planted_drops(seed=3, plant={4: {2: 0.6}})
    out = tailor_overrides(drops, list("abcdef"), COLUMNS)
    assert out == {"e": {"strength": 0.5, "why": out["e"]["why"]}}
    assert "the whole recipe costs this class 6" in out["e"]["why"]
    # a clear but small excess (about 8 points) passes margin 0.05, not the default 0.10
    small = planted_drops(n=400, plant={1: {1: 0.10}})
    assert "b" not in tailor_overrides(small, list("abcdef"), COLUMNS, samples=500)
    assert tailor_overrides(small, list("abcdef"), COLUMNS, margin=0.05,
                            samples=500)["b"]["without"] == ["HorizontalFlip"]


def test_affinity_table_intervals_cover_the_planted_drop():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 80)
    clean = np.ones(len(labels))
    aug = (rng.random(len(labels)) > np.where(labels == 1, 0.5, 0.05)).astype(float)
    t = affinity_table(np.stack([clean, aug, clean]), labels, 3)
    assert t["drop"].shape == (3, 2) and np.allclose(t["drop"][:, 1], 0)
    assert t["low"][1, 0] > 0.3 and t["high"][1, 0] < 0.7 and t["low"][0, 0] < 0.1
    assert t["low"][1, 0] <= t["drop"][1, 0] <= t["high"][1, 0]
    assert np.isclose(t["overall_drop"][0], (clean - aug).mean())
    assert [d.shape for d in per_image_drops(np.stack([clean, aug, clean]), labels, 3)] == \
        [(80, 2)] * 3


# --------------------------------------------------------------------------- end to end

COLOURS = {"red_circle": (220, 40, 40), "green_circle": (30, 150, 30)}
SHAPES = ("square", "triangle", "cross")


def colour_image(kind: str, rng, size: int = 32) -> np.ndarray:
    """A gray noisy background with one object: a red or a green disc (same luminance, told
    apart only by colour) or a gray square / triangle / cross."""
    import cv2

    img = np.clip(rng.normal(rng.uniform(60, 120), 12, (size, size, 3)), 0, 255)
    mask = np.zeros((size, size), np.uint8)
    r = rng.uniform(0.25, 0.38) * size
    cx, cy = rng.uniform(r, size - r, 2)
    if kind in COLOURS or kind == "square":
        if kind == "square":
            cv2.rectangle(mask, (int(cx - r), int(cy - r)), (int(cx + r), int(cy + r)), 255, -1)
        else:
            cv2.circle(mask, (int(cx), int(cy)), int(r), 255, -1)
    elif kind == "triangle":
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(mask, [pts], 255)
    else:
        w = max(2, int(r / 2))
        cv2.rectangle(mask, (int(cx - r), int(cy - w)), (int(cx + r), int(cy + w)), 255, -1)
        cv2.rectangle(mask, (int(cx - w), int(cy - r)), (int(cx + w), int(cy + r)), 255, -1)
    colour = np.array(COLOURS.get(kind, (170, 170, 170)), float) * rng.uniform(0.8, 1.2)
    img = np.where(mask[..., None] > 0, colour, img)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_colour_dataset(root, train=100, val=30, seed=0):
    import cv2

    rng = np.random.default_rng(seed)
    for split, n in (("train", train), ("val", val)):
        for kind in (*COLOURS, *SHAPES):
            folder = root / split / kind
            folder.mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{i}.png"), colour_image(kind, rng)[..., ::-1])
    return root


TINY = {"name": "colour", "model": {"width": 16, "growth_rate": 12, "blocks": 3,
                                    "layers_per_block": 1},
        "batch_size": 8, "workers": 0, "mixed_precision": False, "seed": 0,
        "optimizer": {"name": "adam"},
        "schedule": {"min_lr": 0.001, "max_lr": 0.005, "half_cycle": "auto"},
        "phases": [{"size": 16, "epochs": 4, "recipe": "none"}]}

COLOUR_RECIPE = {"name": "colour-shifts", "description": "gray and hue shifts", "transforms": [
    {"transform": "HorizontalFlip", "p": 0.5, "why": "harmless here"},
    {"transform": "ToGray", "p": 1.0, "why": "removes colour"},
    {"transform": "HueSaturationValue", "p": 0.5, "why": "turns red into green",
     "hue_shift_limit": [55, 65], "sat_shift_limit": [0, 0], "val_shift_limit": [0, 0]}]}


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    """A tiny model trained 8 epochs at 16 px on 5 classes, two told apart only by colour."""
    import augmine.train.phases as train

    base = tmp_path_factory.mktemp("colour")
    root = write_colour_dataset(base / "data")
    run = base / "run"
    train.train_run(TINY, root, run, progress=False)
    recipe = base / "colour-shifts.yaml"
    recipe.write_text(yaml.safe_dump(COLOUR_RECIPE, sort_keys=False))
    return run, recipe


@pytest.mark.slow
def test_affinity_finds_the_colour_classes_and_tailor_spares_them(colour_run, tmp_path):
    from augmine.train.affinity import load_affinity
    from augmine.runs.rundir import RunDir

    run, recipe = colour_run
    res = run_cli("recipe", "affinity", recipe, "--run", run, "--no-progress")
    assert res.exit_code == 0, res.output
    result = load_affinity(run, recipe)
    assert result["columns"] == ["HorizontalFlip", "ToGray", "HueSaturationValue", WHOLE]
    assert result["overall"]["clean"] > 0.85, result["overall"]
    ids = result["class_ids"]
    drop = np.array(result["drop"])
    colour = [ids.index(k) for k in COLOURS]
    others = [ids.index(k) for k in SHAPES]
    for k in (1, 2):                              # ToGray, HueSaturationValue
        assert drop[colour, k].max() > 0.4 and drop[colour, k].mean() > 0.3, drop
        assert np.abs(drop[others, k]).max() < 0.15, drop
    assert np.abs(drop[:, 0]).max() < 0.15        # a flip costs nobody
    assert "ToGray" in res.output and "hurts most: " in res.output
    hurt = res.output.split("ToGray", 1)[1].splitlines()[1]
    assert hurt.split(": ", 1)[1].split(" ")[0] in COLOURS      # a colour class first
    folder = RunDir(run).affinity_dir("colour-shifts")
    assert sorted(p.name for p in folder.iterdir()) == ["affinity.csv", "affinity.json",
                                                        "affinity.png"]
    rows = (folder / "affinity.csv").read_text().splitlines()
    assert len(rows) == 1 + (len(ids) + 1) * 4

    # the same command again reuses the saved result; --force measures again
    stamp = (folder / "affinity.json").stat().st_mtime_ns
    again = run_cli("recipe", "affinity", recipe, "--run", run, "--no-progress")
    assert again.exit_code == 0 and "reused" in again.output
    assert (folder / "affinity.json").stat().st_mtime_ns == stamp
    forced = run_cli("recipe", "affinity", recipe, "--run", run, "--no-progress", "--force")
    assert forced.exit_code == 0 and "reused" not in forced.output
    assert (folder / "affinity.json").stat().st_mtime_ns != stamp
    assert load_affinity(run, recipe)["drop"] == result["drop"]     # seeded: same numbers

    out = tmp_path / "tailored.yaml"
    res = run_cli("recipe", "tailor", recipe, "--run", run, "-o", out, "--no-progress")
    assert res.exit_code == 0, res.output
    doc = yaml.safe_load(out.read_text())
    assert doc["transforms"] == COLOUR_RECIPE["transforms"]
    assert doc["name"] == "colour-shifts-tailored" and "Tailored" in doc["description"]
    assert set(doc["classes"]) == set(COLOURS), doc["classes"]
    for cid, entry in doc["classes"].items():
        assert set(entry["without"]) <= {"ToGray", "HueSaturationValue"} and entry["without"]
        assert entry["why"].startswith("affinity: ") and "for the others" in entry["why"]
        assert entry.get("strength", 0.5) == 0.5
    assert load_recipe(out).classes == doc["classes"]          # the tailored recipe loads


@pytest.mark.slow
def test_affinity_in_a_pipe_prints_a_line_per_stage_and_no_bars(colour_run, tmp_path):
    """`recipe affinity` with its default --progress, stdout and stderr piped (a log)."""
    import subprocess

    from support import augmine_command, copy_run, subprocess_env

    run, recipe = colour_run
    run = copy_run(run, tmp_path)
    out = subprocess.run([*augmine_command(), "recipe", "affinity", str(recipe), "--run",
                          str(run), "--draws", "1", "--force"], capture_output=True, text=True,
                         env=subprocess_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "\r" not in out.stderr and "\r" not in out.stdout
    assert "affinity: 5 passes (4 columns x 1 draws, and clean) over 150 val images at 16 px" \
        in out.stderr.splitlines()
    assert "hurts most: " in out.stdout


def test_affinity_without_a_run_is_one_line(tmp_path):
    res = run_cli("recipe", "affinity", "light", "--run", tmp_path / "nope", "--no-progress")
    assert res.exit_code == 1 and res.output.startswith("Error: ") and \
        "Traceback" not in res.output


# --------------------------------------------------------------------------- the app page

@pytest.fixture
def _restore_argv():
    import sys

    saved = list(sys.argv)
    yield
    sys.argv[:] = saved


def affinity_page(run, data=None):
    """The app's Affinity page as `augmine app RUN --data DATA` shows it (AppTest)."""
    import sys

    from streamlit.testing.v1 import AppTest
    from test_app import APP, TIMEOUT

    sys.argv[:] = [str(APP), str(run)] + (["--data", str(data)] if data else [])
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["page"] = "Affinity"
    return at.run()


def fake_affinity(run, index, planted_class=1):
    """A saved affinity result of the built-in `light` recipe with random scores; the
    planted class loses everything under the first transform. No model involved."""
    from augmine.train.affinity import affinity_result, save_affinity, variants

    recipe = load_recipe("light")
    rng = np.random.default_rng(0)
    n = len(index.val.labels)
    correct = (rng.random((len(variants(recipe)), n)) < 0.9).astype(float)
    correct[0] = 1.0
    correct[1, np.asarray(index.val.labels) == planted_class] = 0.0
    result = affinity_result(correct, index, recipe, {"checkpoint": "best.keras", "size": 32,
                                                      "data": str(index.root)}, draws=2)
    save_affinity(run, result)
    return result


def test_affinity_page_heatmap_and_cell_images(synth_index, tmp_path, _restore_argv):
    from test_app import no_exception, texts

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"name: fake\ndata: {synth_index.root}\n")
    at = affinity_page(run)
    no_exception(at)
    assert f"augmine recipe affinity RECIPE --run {run.resolve()}" in texts(at)

    result = fake_affinity(run, synth_index)
    at = affinity_page(run)
    no_exception(at)
    assert at.selectbox(key="aff_recipe").value == "light"
    assert len(at.image) == 1 + 8                     # the heatmap, 8 clean|augmented strips
    at.selectbox(key="aff_class").set_value(1).run()
    at.selectbox(key="aff_column").set_value(0).run()
    no_exception(at)
    assert [m.value for m in at.metric][:2] == ["100%", "+100.0"]
    strips = at.image[1:]
    assert len(strips) == 8
    class_paths = {Path(p).name for p, y in zip(synth_index.val.paths, synth_index.val.labels)
                   if y == 1}
    assert {s.captions[0] for s in strips} <= class_paths    # the chosen class's val images
    assert result["columns"][0] in texts(at) and synth_index.class_names[1] in texts(at)
