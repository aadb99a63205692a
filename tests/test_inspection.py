"""Inspection statistics on hand-made images with known values, suggestions, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from augmine.augment.inspection import (box_stats, format_report, image_stats, inspect_dataset,
                                jpeg_quality,
                                measure_paths, suggest_recipe, write_report)


def _save(path: Path, rgb: np.ndarray, quality: int | None = None) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if quality else []
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    return path


def _gray(v):
    return np.full((8, 8, 3), v, np.uint8)


def _red():
    img = np.zeros((8, 8, 3), np.uint8)
    img[..., 0] = 255
    return img


def _halves():
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, 4:] = 255
    return img


def _checker():
    img = np.zeros((8, 8, 3), np.uint8)
    img[(np.indices((8, 8)).sum(0) % 2) == 1] = 255
    return img


@pytest.fixture(scope="module")
def handmade(tmp_path_factory) -> Path:
    """Class-folder dataset: class 'flat' = grayscale images, class 'red' = colour images."""
    root = tmp_path_factory.mktemp("hand") / "data"
    for split in ("train", "val"):
        _save(root / split / "flat" / "g100.png", _gray(100))
        _save(root / split / "flat" / "halves.png", _halves())
        _save(root / split / "red" / "red.png", _red())
        _save(root / split / "red" / "checker.png", _checker())
    # train gets one brighter extra image so train and val differ
    _save(root / "train" / "flat" / "g200.png", _gray(200))
    return root


def test_uniform_gray_image():
    s = image_stats(_gray(100))
    assert s["grayscale"] == 1.0
    assert s["brightness"] == pytest.approx(100) and s["contrast"] == pytest.approx(0)
    assert s["colourfulness"] == pytest.approx(0) and s["sharpness"] == pytest.approx(0)
    assert s["noise"] == pytest.approx(0) and (s["height"], s["width"]) == (8, 8)


def test_half_black_half_white_contrast():
    s = image_stats(_halves())
    assert s["brightness"] == pytest.approx(127.5) and s["contrast"] == pytest.approx(127.5)


def test_pure_red_colourfulness_hand_computed():
    s = image_stats(_red())
    # rg = 255, yb = 127.5 everywhere: M = 0 (no spread) + 0.3 * sqrt(255^2 + 127.5^2)
    assert s["colourfulness"] == pytest.approx(0.3 * math.hypot(255, 127.5), rel=1e-5)
    assert s["cast_rg"] == pytest.approx(255) and s["cast_yb"] == pytest.approx(127.5)
    assert s["brightness"] == pytest.approx(76, abs=0.5)  # luma 0.299 * 255
    assert s["grayscale"] == 0.0


def test_checkerboard_laplacian_variance():
    # every pixel has 4 opposite neighbours: Laplacian = +-4*255, mean 0 -> var (4*255)^2
    assert image_stats(_checker())["sharpness"] == pytest.approx((4 * 255) ** 2)


def test_immerkaer_noise_recovers_added_noise():
    rng = np.random.default_rng(0)
    flat = np.full((128, 128, 3), 128.0)
    noisy = np.clip(flat + rng.normal(0, 10, (128, 128, 1)), 0, 255).astype(np.uint8)
    assert image_stats(noisy)["noise"] == pytest.approx(10, rel=0.1)


@pytest.mark.parametrize("quality", [30, 60, 75, 95])
def test_jpeg_quality_from_quantisation_table(tmp_path, quality):
    path = _save(tmp_path / "x.jpg", _halves(), quality=quality)
    assert jpeg_quality(path.read_bytes()) == quality
    assert math.isnan(jpeg_quality(b"\x89PNG...."))


def test_box_stats_inclusive_pixel_boxes():
    boxes = np.array([[0, 0, 63, 63], [16, 16, 47, 47], [np.nan] * 4, [0, 10, 31, 41]])
    b = box_stats(boxes, np.full(4, 64.0), np.full(4, 64.0))
    np.testing.assert_allclose(b["area"][[0, 1, 3]], [1.0, 0.25, 0.25])
    np.testing.assert_allclose(b["cx"][[0, 1, 3]], [0.5, 0.5, 0.25])
    np.testing.assert_array_equal(b["touches"][[0, 1, 3]], [1.0, 0.0, 1.0])
    assert np.isnan(b["area"][2]) and np.isnan(b["touches"][2])


def test_inspect_handmade_dataset_summary_classes_and_comparison(handmade):
    r = inspect_dataset(handmade, split="val", compare="train", size=None)
    assert r["images"] == 4 and r["sizes"] == {"8x8": 4}
    assert r["grayscale"] == {"count": 3, "share": 0.75}  # gray, halves, checker
    # brightness: 100, 127.5, ~76 (red), 127.5 (checker)
    assert r["stats"]["brightness"]["mean"] == pytest.approx((100 + 127.5 + 76 + 127.5) / 4,
                                                             abs=0.2)
    rows = {row["name"]: row for row in r["per_class"]}
    assert rows["flat"]["grayscale_share"] == 1.0 and rows["red"]["grayscale_share"] == 0.5
    assert rows["flat"]["contrast"] == pytest.approx((0 + 127.5) / 2)
    assert r["boxes"] == {"count": 0}
    cmp = r["comparison"]
    assert cmp["split"] == "train" and cmp["images"] == 5
    assert cmp["differences"]["brightness"]["mean_b"] == pytest.approx(
        (100 + 127.5 + 76 + 127.5 + 200) / 5, abs=0.2)


def test_upscaled_copies_are_measured_and_suggested_like_the_originals(real_root, tmp_path):
    """Stored at 512x384 (8x and 6x nearest-neighbour copies, JPEG quality 95), measured at
    the 64 px training size: the same statistics and suggested ranges as the 64 px
    originals (noise sigma within 20%); at the stored resolution the noise sigma falls
    several-fold (what `--size 0` warns about)."""
    import shutil

    import cv2

    from augmine.data.dataset import load_index

    big = tmp_path / "big"
    shutil.copytree(real_root, big, ignore=shutil.ignore_patterns("train"))
    (big / "train").mkdir()
    for cls in (real_root / "train").iterdir():       # a few train images keep it loadable
        (big / "train" / cls.name / "images").mkdir(parents=True)
        for img in sorted((cls / "images").glob("*.JPEG"))[:2]:
            shutil.copy(img, big / "train" / cls.name / "images" / img.name)
    for img in (big / "val" / "images").glob("*.JPEG"):
        pixels = cv2.imread(str(img))
        cv2.imwrite(str(img), cv2.resize(pixels, (512, 384), interpolation=cv2.INTER_NEAREST),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
    small = inspect_dataset(load_index(real_root), compare=None)
    large = inspect_dataset(load_index(big), compare=None)
    assert large["measured_size"] == 64 and large["sizes"] == {"512x384": 500}
    for stat, tol in (("noise", 0.2), ("brightness", 0.02), ("contrast", 0.05)):
        a, b = small["stats"][stat]["median"], large["stats"][stat]["median"]
        assert abs(b - a) <= tol * a, (stat, a, b)
    noise_of = {name: next(e for e in suggest_recipe(r)["transforms"]
                           if e["transform"] == "GaussNoise")["std_range"]
                for name, r in (("small", small), ("large", large))}
    assert noise_of["large"] == pytest.approx(noise_of["small"], rel=0.25, abs=0.002)
    stored = inspect_dataset(load_index(big), compare=None, size=None)
    assert stored["stats"]["noise"]["median"] < small["stats"]["noise"]["median"] / 4
    assert "stored resolution" in format_report(stored)
    assert "resized to 64 x 64 px" in format_report(large)


def test_parallel_measurement_matches_serial(handmade):
    paths = sorted(str(p) for p in handmade.rglob("*.png"))
    serial = measure_paths(paths, workers=1)
    parallel = measure_paths(paths * 2, workers=2)  # 2 worker processes
    np.testing.assert_allclose(parallel, np.concatenate([serial, serial]), equal_nan=True)


def test_measuring_leaves_opencv_thread_count_as_it_was(handmade):
    import cv2

    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(3)
        paths = sorted(str(p) for p in handmade.rglob("*.png"))
        measure_paths(paths, workers=1)
        inspect_dataset(handmade, compare="train", workers=1)
        assert cv2.getNumThreads() == 3       # the caller's setting, not the 1 used inside
    finally:
        cv2.setNumThreads(before)


def test_package_parts_are_importable_on_their_own():
    from augmine.augment.inspection import measure, render, suggest, summary
    from augmine.augment import inspection

    assert measure.image_stats is inspection.image_stats
    assert summary.inspect_dataset is inspection.inspect_dataset
    assert suggest.suggest_recipe is inspection.suggest_recipe
    assert render.format_report is inspection.format_report


def test_write_report_files(handmade, tmp_path):
    import cv2

    r = inspect_dataset(handmade)
    files = write_report(r, tmp_path / "out")
    data = json.loads(files["json"].read_text())
    assert data["grayscale"]["count"] == 3 and "_images" not in data
    lines = files["csv"].read_text().splitlines()
    assert len(lines) == 1 + 4 and lines[0].startswith("path,label,height")
    png = cv2.imread(str(files["png"]))
    assert png is not None and png.shape[0] > 200


def test_suggested_recipe_quotes_measurements_and_loads(real_index):
    from augmine.augment.compose import build_compose
    from augmine.augment.recipes import parse_recipe

    r = inspect_dataset(real_index, compare=None)
    rec = suggest_recipe(r, name="s")
    names = [t["transform"] for t in rec["transforms"]]
    assert len(names) == 14 and names[0] == "RandomResizedCrop"
    whys = {t["transform"]: t["why"] for t in rec["transforms"]}
    g = r["grayscale"]
    assert f"{g['count']} of {r['images']} images" in whys["ToGray"]
    assert f"median {r['boxes']['area']['median']:.0%}" in whys["RandomResizedCrop"]
    noise = next(t for t in rec["transforms"] if t["transform"] == "GaussNoise")
    assert noise["std_range"][1] < 0.2  # far below albumentations' default
    quality = next(t for t in rec["transforms"] if t["transform"] == "ImageCompression")
    assert quality["quality_range"][0] < 99  # the default would do nothing
    compose = build_compose(parse_recipe(rec), 32)
    assert compose(image=np.zeros((64, 64, 3), np.uint8))["image"].shape == (32, 32, 3)


def _report(brightness, contrast, colourfulness, cast, sharpness, noise, jpeg, area, centre,
            gray_share, boxes=True):
    """An inspection report of 100 images whose statistics are evenly spread over the given
    (low, high) ranges, as :func:`inspect_dataset` would summarise them."""
    from augmine.augment.inspection.summary import summarize

    def spread(lo_hi):
        return summarize(np.linspace(*lo_hi, 101))

    stats = {"brightness": spread(brightness), "contrast": spread(contrast),
             "colourfulness": spread(colourfulness), "cast_rg": spread(cast),
             "cast_yb": spread(cast), "sharpness": spread(sharpness), "noise": spread(noise),
             "jpeg_quality": spread(jpeg)}
    box = {"count": 0}
    if boxes:
        box = {"count": 100, "area": spread(area), "cx": spread(centre), "cy": spread(centre),
               "touching_border_share": 0.4, "full_frame_share": 0.1, "left_share": 0.5,
               "right_share": 0.5}
    return {"root": "/data/x", "split": "val", "images": 100, "stats": stats, "boxes": box,
            "grayscale": {"count": int(gray_share * 100), "share": gray_share}}


# Two datasets that differ in every statistic the suggestion reads (each within the ranges
# the rules keep values to, so a derived value must move).
REPORT_A = dict(brightness=(60, 160), contrast=(20, 80), colourfulness=(10, 50), cast=(-20, 20),
                sharpness=(100, 900), noise=(1, 5), jpeg=(70, 95), area=(0.3, 0.9),
                centre=(0.35, 0.65), gray_share=0.05)
REPORT_B = dict(brightness=(40, 200), contrast=(25, 65), colourfulness=(5, 75), cast=(-40, 40),
                sharpness=(300, 3000), noise=(2, 10), jpeg=(60, 85), area=(0.5, 1.0),
                centre=(0.3, 0.7), gray_share=0.1)
# Arguments that say how to apply a transform, not how strongly.
MECHANICS = ("transform", "p", "why", "border_mode", "area_for_downscale")


def test_suggested_values_follow_the_measurements_or_say_they_are_defaults():
    """Every value either moves when its statistic moves, or its why line says plainly that
    it is a default; the probabilities are declared defaults in the description."""
    a, b = suggest_recipe(_report(**REPORT_A)), suggest_recipe(_report(**REPORT_B))
    assert [e["transform"] for e in a["transforms"]] == [e["transform"] for e in b["transforms"]]
    derived, defaults = set(), set()
    for ea, eb in zip(a["transforms"], b["transforms"]):
        for arg in ea:
            if arg in MECHANICS:
                continue
            if ea[arg] != eb[arg]:
                derived.add(f"{ea['transform']}.{arg}")
            else:
                defaults.add(f"{ea['transform']}.{arg}")
                assert "default, not measured" in ea["why"], (ea["transform"], arg, ea["why"])
    assert derived == {
        "RandomResizedCrop.scale", "Affine.translate_percent",
        "RandomBrightnessContrast.brightness_limit", "RandomBrightnessContrast.contrast_limit",
        "HueSaturationValue.sat_shift_limit", "RGBShift.r_shift_limit", "RGBShift.g_shift_limit",
        "RGBShift.b_shift_limit", "CLAHE.clip_limit", "GaussNoise.std_range",
        "ImageCompression.quality_range", "RandomGamma.gamma_limit"}
    assert {"HueSaturationValue.hue_shift_limit", "GaussianBlur.sigma_limit", "Sharpen.alpha",
            "CoarseDropout.hole_height_range", "Affine.rotate"} <= defaults
    togray = [next(e["p"] for e in r["transforms"] if e["transform"] == "ToGray") for r in (a, b)]
    assert togray == [0.1, 0.2]                     # twice the grayscale share
    assert "every probability p is a default, not measured, except ToGray's" in a["description"]
    plain = suggest_recipe(_report(**REPORT_A, boxes=False))
    for entry in plain["transforms"][:2]:           # crop and flip, with no boxes to go by
        assert entry["why"].startswith("default, not measured"), entry


def test_clahe_and_gamma_values_are_the_ratios_their_why_lines_quote():
    r = _report(**REPORT_A)
    rec = {e["transform"]: e for e in suggest_recipe(r)["transforms"]}
    contrast, bright = r["stats"]["contrast"], r["stats"]["brightness"]
    assert rec["CLAHE"]["clip_limit"][1] == pytest.approx(contrast["median"] / contrast["p10"],
                                                          abs=0.05)
    assert f"clip limit (the most it raises local contrast) up to " \
           f"{rec['CLAHE']['clip_limit'][1]:g}" in rec["CLAHE"]["why"]
    lo, hi = (g / 100 for g in rec["RandomGamma"]["gamma_limit"])
    median = bright["median"] / 255
    # gamma g maps x to x**g: the range takes the median brightness to the quartiles
    assert 255 * median ** hi == pytest.approx(bright["p25"], rel=0.02)
    assert 255 * median ** lo == pytest.approx(bright["p75"], rel=0.02)
    assert f"darker than {bright['p25']:.0f}/255" in rec["RandomGamma"]["why"]


def test_tiny_imagenet_14_quotes_numbers_measured_on_the_sample(real_index):
    from augmine.augment.recipes import load_recipe

    r = inspect_dataset(real_index, compare=None)
    whys = {e["transform"]: " ".join(e["why"].split())
            for e in load_recipe("tiny-imagenet-14").transforms}
    g = r["grayscale"]
    assert f"{g['count']} of {r['images']} val images ({g['share']:.1%})" in whys["ToGray"]
    assert f"median {r['boxes']['area']['median']:.0%}" in whys["RandomResizedCrop"]
    assert f"{r['boxes']['touching_border_share']:.0%} touch" in whys["RandomResizedCrop"]
    assert f"{r['stats']['brightness']['mean']:.0f}/255 with sd " \
           f"{r['stats']['brightness']['sd']:.0f}" in whys["RandomBrightnessContrast"]
    assert f"median {r['stats']['noise']['median']:.1f}" in whys["GaussNoise"]
    assert f"quality {r['stats']['jpeg_quality']['median']:.0f}" in whys["ImageCompression"]


def test_cli_inspect_prints_tables_and_writes_files(handmade, tmp_path):
    from augmine.cli import cli
    from augmine.augment.recipes import load_recipe

    out, sug = tmp_path / "report", tmp_path / "s.yaml"
    res = CliRunner().invoke(cli, ["inspect", str(handmade), "--out", str(out),
                                   "--suggest", str(sug)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "grayscale 3 (75.0%)" in res.output and "train: 5 images" in res.output
    assert "brightness" in res.output and "flat" in res.output and "red" in res.output
    assert {p.name for p in out.iterdir()} >= {"inspection.json", "images.csv", "histograms.png"}
    assert len(load_recipe(sug).transforms) >= 10


def test_cli_inspect_bad_path_is_one_line(tmp_path):
    from augmine.cli import cli

    res = CliRunner().invoke(cli, ["inspect", str(tmp_path / "nope")])
    assert res.exit_code != 0 and res.output.startswith("Error:")
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------- per-class signals

@pytest.mark.parametrize("counts, images, holders", [
    ([10, 2, 0, 1, 0, 0, 0, 0, 0, 0], [10] * 10, [0]),     # one class gray, a few strays
    ([10, 10, 0, 0, 0, 0, 0, 0, 0, 0], [10] * 10, [0, 1]),  # two classes, both gray
    ([10, 10, 10, 0, 0, 0, 0, 0, 0, 0], [10] * 10, []),     # three of ten: more than a quarter
    ([1] * 10, [10] * 10, []),                             # spread evenly
    ([50] + [0] * 199, [50] * 200, [0]),                   # one class of 200
    ([0, 0, 3], [10, 10, 10], [2]),
    ([2, 1], [2, 2], []),                                  # 100% against 50%: not far apart
    ([2, 0, 0, 0], [50, 50, 50, 50], []),                  # too few images to mean anything
    ([4, 0, 0, 0], [50, 50, 50, 50], []),                  # 8% of its class: below 10%
])
def test_concentrated_classes_rule(counts, images, holders):
    from augmine.augment.inspection.summary import concentrated_classes

    assert concentrated_classes(np.array(counts), np.array(images)) == holders


@pytest.fixture(scope="module")
def gray_class_root(synth_root, tmp_path_factory) -> tuple[Path, int]:
    """The generated dataset with every image of class 3 (train and val) stored grayscale."""
    import shutil

    import cv2

    from augmine.data.dataset import load_index

    root = tmp_path_factory.mktemp("grayclass") / "data"
    shutil.copytree(synth_root, root)
    index = load_index(root)
    for split in ("train", "val"):
        sp = index.split(split)
        for path in np.asarray(sp.paths)[sp.labels == 3]:
            cv2.imwrite(str(path), cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY))
    return root, 3


def test_inspect_suggest_gives_togray_to_the_class_that_holds_the_grayscale_images(
        gray_class_root, tmp_path):
    from augmine.augment.compose import class_overrides, recipe_for_class
    from augmine.augment.recipes import load_recipe
    from augmine.cli import cli
    from augmine.data.dataset import load_index

    root, gray = gray_class_root
    index = load_index(root)
    name, cid = index.class_names[gray], index.class_ids[gray]
    out = tmp_path / "out.yaml"
    res = CliRunner().invoke(cli, ["inspect", str(root), "--out", str(tmp_path / "report"),
                                   "--suggest", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "report" / "inspection.json").read_text())
    held = report["concentrated"]["grayscale"]
    assert [h["class_id"] for h in held["holders"]] == [cid]
    rest = held["rest"]
    said = (f"grayscale is concentrated, held by 1 of 10 classes ({name} 10 of 10 images, "
            f"100%), which hold 10 of the {held['count']} grayscale images "
            f"({10 / held['count']:.0%}); the other 9 classes: {rest['count']} of 90 "
            f"({rest['count'] / 90:.1%})")
    assert said in res.output and "transforms and 9 class overrides (classes:)" in res.output
    recipe = load_recipe(out)
    togray = next(t for t in recipe.transforms if t["transform"] == "ToGray")
    assert togray["p"] == 1.0
    assert f"{name} 10 of 10 images, 100%" in togray["why"] and f"for {name} only" in togray["why"]
    overall = report["grayscale"]["share"]
    assert f"({overall:.1%}) are grayscale: p {round(min(max(overall * 2, 0.02), 0.3), 2)}" \
        in togray["why"]
    # every other class trains without ToGray, each override quoting its own count
    assert set(recipe.classes) == set(index.class_ids) - {cid}
    for row in report["per_class"]:
        if row["class_id"] != cid:
            override = recipe.classes[row["class_id"]]
            assert override["without"] == ["ToGray"]
            assert override["why"].startswith(
                f"{row['name']}: {row['grayscale_count']} of {row['images']} images grayscale")
    labels = class_overrides(recipe, index.class_ids, index.class_names)
    assert sorted(labels) == [c for c in range(10) if c != gray]
    assert all("ToGray" not in str(recipe_for_class(recipe, o).transforms)
               for o in labels.values())
    res = CliRunner().invoke(cli, ["recipe", "validate", str(out)])
    assert res.exit_code == 0 and "9 class overrides" in res.output, res.output


def test_spread_grayscale_keeps_one_global_togray(handmade):
    report = inspect_dataset(handmade, compare=None, size=None)
    assert report["concentrated"] == {}
    recipe = suggest_recipe(report)
    assert "classes" not in recipe
    assert "for " not in next(t for t in recipe["transforms"] if t["transform"] == "ToGray")["why"]
    assert "concentrated" not in format_report(report)


@pytest.mark.parametrize("option", ["--suggest", "--out"])
def test_unwritable_output_fails_before_measuring(handmade, tmp_path, monkeypatch, option):
    from support import read_only

    from augmine.augment.inspection import summary
    from augmine.cli import cli

    measured = []
    monkeypatch.setattr(summary, "measure_paths", lambda *a, **k: measured.append(a))
    folder = tmp_path / "ro"
    folder.mkdir()
    target = folder / ("s.yaml" if option == "--suggest" else "report")
    args = ["inspect", str(handmade), option, str(target)]
    if option == "--suggest":
        args += ["--out", str(tmp_path / "report")]
    with read_only(folder) as why:
        res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.output.strip() == (
        f"Error: cannot write {target} ({option}): {folder} is not writable ({why}); choose a "
        f"writable place or make {folder} writable, then run `augmine inspect` again (nothing "
        "was measured)")
    assert measured == [] and not (tmp_path / "report").exists() and list(folder.iterdir()) == []


def test_suggest_naming_a_folder_is_one_line(handmade, tmp_path):
    from augmine.cli import cli

    res = CliRunner().invoke(cli, ["inspect", str(handmade), "--suggest", str(tmp_path)])
    assert res.exit_code == 1
    assert res.output.strip() == (f"Error: {tmp_path} is a folder; --suggest takes a file name "
                                  f"(e.g. {tmp_path / 'suggested.yaml'})")


def test_a_class_without_val_images_trains_without_the_held_togray(tmp_path):
    """Class e has train images only: it gets no ToGray either, though nothing was measured."""
    rng = np.random.default_rng(0)
    for split, classes in (("train", "abcde"), ("val", "abcd")):
        for c in classes:
            for i in range(4):
                img = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
                _save(tmp_path / split / c / f"{i}.png",
                      np.repeat(img[..., :1], 3, axis=2) if c == "a" else img)
    report = inspect_dataset(tmp_path, compare=None, size=None)
    assert report["unmeasured_classes"] == [["e", "e"]]
    assert [h["class_id"] for h in report["concentrated"]["grayscale"]["holders"]] == ["a"]
    classes = suggest_recipe(report)["classes"]
    assert sorted(classes) == ["b", "c", "d", "e"]
    assert classes["e"] == {"without": ["ToGray"], "why": "e: no images measured; ToGray is for "
                            "a, which hold 100% of the grayscale images"}
