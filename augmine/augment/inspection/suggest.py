"""The recipe suggestion: an augmentation recipe derived from an inspection report, every
``why:`` line quoting the numbers it was set from, and naming as "default, not measured"
each value no measurement sets."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from augmine.augment.inspection.summary import concentration_text

# The transform a statistic held by a few classes (the report's ``concentrated``) is given
# to those classes only.
CONCENTRATED_TRANSFORMS = {"grayscale": "ToGray"}


def _r(x: float, nd: int = 2) -> float:
    return float(round(float(x), nd))


def _unit(brightness: float) -> float:
    """A brightness (0-255) as a fraction kept inside (0, 1), so its log is finite and < 0."""
    return min(max(float(brightness), 1.0), 254.0) / 255.0


def suggest_recipe(stats: dict[str, Any], name: str = "suggested") -> dict[str, Any]:
    """A recipe dict (``name``, ``description``, ``transforms``) derived from an
    :func:`inspect_dataset` report; every ``why:`` quotes the numbers it was set from.

    Rules (each a plain heuristic, the numbers are in the why lines):
    crop scale from the box areas, translation from the spread of the box centres,
    brightness/contrast limits from the spread of per-image brightness and contrast
    (relative to 255 and to the median contrast), saturation from the colourfulness spread,
    RGB shift from the colour-cast spread, ToGray probability from the grayscale share
    (when a few classes hold the grayscale images, the report's ``concentrated``: ToGray for
    those classes at about twice their own share, and ``classes:`` overrides switching it off
    for every other class, including classes without images in the split),
    CLAHE's clip limit from the median / p10 contrast ratio, noise from the measured noise
    level, JPEG quality range from the measured qualities, gamma range from the brightness
    quartiles. Values no statistic sets (hue and value shifts, rotation and zoom, blur,
    sharpening, dropout holes, crops without boxes) are fixed defaults, and their why lines
    say "default, not measured"; so are the probabilities ``p`` (the description says so),
    except ToGray's.
    """
    s = stats["stats"]
    n = stats["images"]
    b = stats.get("boxes") or {}
    gray = stats["grayscale"]["share"]
    bright, contr, colour = s["brightness"], s["contrast"], s["colourfulness"]
    sharp, noise = s["sharpness"], s["noise"]
    jq = s.get("jpeg_quality")
    t: list[dict[str, Any]] = []

    if b.get("count"):
        a = b["area"]
        lo = _r(min(max(a["median"] / 2, 0.25), 0.8))
        t.append({"transform": "RandomResizedCrop", "p": 1.0,
                  "why": f"boxes cover a median {a['median']:.0%} of the frame (p10 {a['p10']:.0%}), "
                         f"{b['touching_border_share']:.0%} touch the border: crops of "
                         f"{lo:.0%}-100% of the area (down to half the median box) show objects "
                         "at the scales val has, often cut by the frame as there",
                  "scale": [lo, 1.0], "area_for_downscale": "image"})
        t.append({"transform": "HorizontalFlip", "p": 0.5,
                  "why": f"box centres sit {b['left_share']:.0%} left / {b['right_share']:.0%} "
                         f"right of the middle (mean x {b['cx']['mean']:.2f}): mirrored "
                         "scenes are as likely as the originals, so flips are safe"})
        tx = _r(min(max(b["cx"]["sd"], b["cy"]["sd"]), 0.2))
        t.append({"transform": "Affine", "p": 0.5,
                  "why": f"box centres spread sd {b['cx']['sd']:.2f} (x) / {b['cy']['sd']:.2f} "
                         f"(y) of the frame: shifts of up to {tx:.0%} keep objects where val "
                         "puts them; rotation +-10 deg and zoom 0.9-1.1: default, not "
                         "measured",
                  "translate_percent": [-tx, tx], "rotate": [-10, 10], "scale": [0.9, 1.1],
                  "border_mode": 1})
    else:
        t.append({"transform": "RandomResizedCrop", "p": 1.0,
                  "why": f"default, not measured: no boxes in the annotations ({n} images) to "
                         "size crops by, so moderate crops of 50-100% of the area",
                  "scale": [0.5, 1.0], "area_for_downscale": "image"})
        t.append({"transform": "HorizontalFlip", "p": 0.5,
                  "why": "default, not measured: no boxes to measure the left/right balance; "
                         "flips are safe for most natural images"})
    bl = _r(min(max(bright["sd"] / 255.0, 0.05), 0.4))
    rel = contr["sd"] / max(contr["median"], 1e-6)
    cl = _r(min(max(rel, 0.05), 0.5))
    t.append({"transform": "RandomBrightnessContrast", "p": 0.8,
              "why": f"per-image brightness {bright['mean']:.0f}/255 sd {bright['sd']:.0f} "
                     f"(p5-p95 {bright['p5']:.0f}-{bright['p95']:.0f}) and RMS contrast median "
                     f"{contr['median']:.0f} sd {contr['sd']:.0f} ({rel:.0%} of the median): "
                     f"brightness +-{bl:.2f}, contrast +-{cl:.2f} span that spread",
              "brightness_limit": [-bl, bl], "contrast_limit": [-cl, cl]})
    sat = int(round(min(max(colour["sd"] / max(colour["median"], 1e-6) * 30, 10), 40)))
    t.append({"transform": "HueSaturationValue", "p": 0.5,
              "why": f"colourfulness median {colour['median']:.0f} sd {colour['sd']:.0f} "
                     f"(p5 {colour['p5']:.0f}, p95 {colour['p95']:.0f}): saturation +-{sat} "
                     "covers that spread; hue +-8 and value +-10: default, not measured "
                     "(no hue statistic is taken)",
              "hue_shift_limit": [-8, 8], "sat_shift_limit": [-sat, sat],
              "val_shift_limit": [-10, 10]})
    rg, yb = s["cast_rg"], s["cast_yb"]
    shift = int(round(min(max(max(rg["sd"], yb["sd"]) / 2, 5), 25)))
    t.append({"transform": "RGBShift", "p": 0.3,
              "why": f"colour casts vary: mean R-G sd {rg['sd']:.0f}, (R+G)/2-B sd {yb['sd']:.0f} "
                     f"(0-255): channel shifts of +-{shift} mimic half that spread",
              "r_shift_limit": [-shift, shift], "g_shift_limit": [-shift, shift],
              "b_shift_limit": [-shift, shift]})
    pg = _r(min(max(gray * 2, 0.02), 0.3))
    gray_why = (f"{stats['grayscale']['count']} of {n} images ({gray:.1%}) are grayscale: "
                f"p {pg} (about twice that share) teaches colour-free shapes")
    held = (stats.get("concentrated") or {}).get("grayscale")
    classes: dict[str, dict[str, Any]] = {}
    if held:
        gray_entry, classes = _gray_for_holders(held, stats["per_class"],
                                                stats.get("unmeasured_classes") or [], gray_why)
        t.append(gray_entry)
    else:
        t.append({"transform": "ToGray", "p": pg, "why": gray_why})
    low_c = contr["p10"]
    gain = contr["median"] / max(low_c, 1e-6)
    clip = _r(min(max(gain, 1.5), 4.0), 1)
    t.append({"transform": "CLAHE", "p": 0.2,
              "why": f"the lowest-contrast tenth has RMS contrast below {low_c:.0f}/255, "
                     f"{gain:.1f}x less than the median {contr['median']:.0f}: local "
                     f"equalisation with clip limit (the most it raises local contrast) up to "
                     f"{clip:g} (that ratio, kept within 1.5-4) lifts flat images toward the "
                     "median", "clip_limit": [1.0, clip]})
    ratio = sharp["p90"] / max(sharp["p10"], 1e-6)
    t.append({"transform": "GaussianBlur", "p": 0.2,
              "why": f"sharpness (Laplacian variance) spans {sharp['p10']:.0f}-{sharp['p90']:.0f} "
                     f"(p10-p90, {ratio:.0f}x), so soft images occur; the blur itself (kernel "
                     "3, sigma 0.3-1.0): default, not measured",
              "blur_limit": [3, 3], "sigma_limit": [0.3, 1.0]})
    t.append({"transform": "Sharpen", "p": 0.2,
              "why": f"the same {ratio:.0f}x sharpness spread the other way (median "
                     f"{sharp['median']:.0f}, p90 {sharp['p90']:.0f}); alpha 0.05-0.15 and "
                     "lightness 0.9-1.1: default, not measured",
              "alpha": [0.05, 0.15], "lightness": [0.9, 1.1]})
    # Immerkaer's estimate also counts fine texture, so the median (not p90) caps the noise
    sd_hi = _r(min(max(noise["median"] / 255.0, 0.01), 0.05), 3)
    sd_lo = _r(min(noise["p10"] / 255.0, sd_hi / 2), 3)
    t.append({"transform": "GaussNoise", "p": 0.3,
              "why": f"measured noise sigma (Immerkaer, includes fine texture) p10 "
                     f"{noise['p10']:.1f}, median {noise['median']:.1f}, p90 {noise['p90']:.1f} "
                     f"of 255: std {sd_lo}-{sd_hi} of full scale stays below the median level "
                     "(the default 0.2-0.44 is far stronger)", "std_range": [sd_lo, sd_hi]})
    if jq and jq.get("n"):
        qlo = int(min(max(jq["p5"] - 25, 30), 90))
        qhi = int(min(max(jq["p95"] + 5, qlo + 5), 95))
        t.append({"transform": "ImageCompression", "p": 0.3,
                  "why": f"JPEG quality estimated from the quantisation tables: median "
                         f"{jq['median']:.0f}, p5 {jq['p5']:.0f}, p95 {jq['p95']:.0f}: "
                         f"re-encoding at {qlo}-{qhi} reproduces and strengthens val's block artefacts (the default "
                         "99-100 changes nothing)", "quality_range": [qlo, qhi]})
    if b.get("count"):
        edge = b["touching_border_share"]
        t.append({"transform": "CoarseDropout", "p": 0.3,
                  "why": f"{edge:.0%} of boxes are cut by the frame and {b['full_frame_share']:.0%} "
                         "fill it, so objects are often partly visible and holes teach partial "
                         "views; 1-2 holes of 10-25% of the side: default, not measured",
                  "num_holes_range": [1, 2], "hole_height_range": [0.1, 0.25],
                  "hole_width_range": [0.1, 0.25]})
    # albumentations' gamma g maps x (0-1) to x**g: the gamma that takes the median
    # brightness to a quartile's is log(quartile) / log(median)
    mid = _unit(bright["median"])
    g_lo = _r(min(max(math.log(_unit(bright["p75"])) / math.log(mid), 0.5), 1.0))
    g_hi = _r(min(max(math.log(_unit(bright["p25"])) / math.log(mid), 1.0), 2.0))
    t.append({"transform": "RandomGamma", "p": 0.2,
              "why": f"a quarter of the images are darker than {bright['p25']:.0f}/255 and a "
                     f"quarter brighter than {bright['p75']:.0f}/255 (median "
                     f"{bright['median']:.0f}): gamma {g_lo:g}-{g_hi:g} takes median mid-tones "
                     "to those exposures (kept within 0.5-2)",
              "gamma_limit": [int(round(g_lo * 100)), int(round(g_hi * 100))]})
    recipe = {"name": name,
              "description": f"Suggested by augmine inspect from {n} {stats['split']} images "
                             f"of {Path(stats['root']).name}; every probability p is a default, "
                             "not measured, except ToGray's; review the why lines and previews.",
              "transforms": t}
    if classes:
        recipe["classes"] = classes
    return recipe


def _gray_for_holders(held: dict[str, Any], rows: list[dict], unmeasured: list[list[str]],
                      global_why: str) -> tuple[dict, dict[str, dict]]:
    """ToGray for the few classes that hold the grayscale images (``held``: the report's
    ``concentrated.grayscale``) and the ``classes:`` overrides switching it off for every
    other class (``rows``: the report's ``per_class``; ``unmeasured``: its ``[class id,
    name]`` of classes without images), keyed by class id. p is about twice
    the holders' own grayscale share (up to 1)."""
    holders = held["holders"]
    share = sum(h["count"] for h in holders) / sum(h["images"] for h in holders)
    p = _r(min(max(share * 2, 0.02), 1.0))
    names = ", ".join(h["name"] for h in holders)
    entry = {"transform": "ToGray", "p": p,
             "why": f"grayscale is {concentration_text(held)}. So ToGray is for {names} only, "
                    f"at p {p} (about twice their {share:.0%}, at most 1), and every other "
                    f"class trains without it (classes:), instead of the overall rule "
                    f"({global_why})"}
    holder_ids = {h["class_id"] for h in holders}
    classes = {r["class_id"]: {"without": ["ToGray"],
                               "why": f"{r['name']}: {r['grayscale_count']} of {r['images']} "
                                      f"images grayscale ({r['grayscale_share']:.0%}); ToGray "
                                      f"is for {names}, which hold {held['held_share']:.0%} "
                                      "of the grayscale images"}
               for r in rows if r["class_id"] not in holder_ids}
    for cid, name in unmeasured:
        classes[cid] = {"without": ["ToGray"],
                        "why": f"{name}: no images measured; ToGray is for {names}, which "
                               f"hold {held['held_share']:.0%} of the grayscale images"}
    return entry, classes


def comparison_plan(recipe_path: str | Path, data: str | Path, config: str = "cpu-small",
                    strengths: tuple[float, float] = (0.5, 1.0)) -> dict[str, Any]:
    """A short plan for proving a suggested recipe on the data: the recipe at two
    ``strengths`` against ``none``, trained from the same seed with ``config``.

    Returns ``{"recipe", "data", "config", "strengths", "arms", "out", "command", "why"}``;
    ``command`` is the exact ``augmine recipe compare`` line to run (paths as given).
    """
    from augmine.core.runtime import command_line

    recipe_path, data = str(recipe_path), str(data)
    stem = Path(recipe_path).stem
    levels = ",".join(f"{s:g}" for s in strengths)
    out = f"runs/compare-{stem}"
    command = command_line("recipe", "compare", "none", recipe_path, "--strength", levels,
                           "--data", data, "--config", config, "--out", out)
    return {
        "recipe": recipe_path, "data": data, "config": config, "strengths": list(strengths),
        "arms": ["none"] + [f"{stem}-s{s:g}" for s in strengths], "out": out,
        "command": command,
        "why": (f"the suggestion matches the validation images, but only training shows "
                f"whether it helps this model at this budget: {stem} at strength "
                f"{strengths[0]:g} and {strengths[1]:g} against no augmentation, same model, "
                f"seed and epochs; the table gives each accuracy and each difference against "
                f"none with a 95% bootstrap interval. Use your own training config instead of "
                f"{config} for your real budget; run the command again to resume or reprint."),
    }
