"""Summaries of measured splits: percentiles, per-class means, outliers, split comparison,
and :func:`inspect_dataset`, which measures a dataset's split and builds the report dict."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from augmine.augment.inspection.measure import COLUMNS, box_stats, measure_paths

# The measurements summarised, compared and plotted (with a unit for people).
STATS = {
    "brightness": "mean luma, 0-255",
    "contrast": "RMS contrast = luma std, 0-255",
    "colourfulness": "Hasler-Suesstrunk M",
    "cast_rg": "mean R-G, 0-255",
    "cast_yb": "mean (R+G)/2-B, 0-255",
    "sharpness": "Laplacian variance",
    "noise": "Immerkaer sigma, 0-255",
    "jpeg_quality": "IJG quality estimate, 1-100",
}


def summarize(values: np.ndarray) -> dict[str, float] | None:
    """Mean, sd and percentiles (5, 10, 25, 50, 75, 90, 95) of the finite ``values``."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return None
    pct = np.percentile(v, [5, 10, 25, 50, 75, 90, 95])
    out = {"n": int(len(v)), "mean": float(v.mean()), "sd": float(v.std()),
           "min": float(v.min()), "max": float(v.max())}
    out.update({f"p{k}": float(x) for k, x in zip((5, 10, 25, 50, 75, 90, 95), pct)})
    out["median"] = out["p50"]
    return out


def split_summary(values: dict[str, np.ndarray], boxes: dict[str, np.ndarray]) -> dict:
    """Summary of one split from its per-image ``values`` ({column: (N,)}) and
    :func:`~augmine.augment.inspection.measure.box_stats` ``boxes``: image count, grayscale count and
    share, image sizes by frequency, :func:`summarize` of every :data:`STATS` entry, box summary."""
    n = len(values["brightness"])
    gray = int(np.nansum(values["grayscale"]))
    sizes: dict[str, int] = {}
    for h, w in zip(values["height"].astype(int), values["width"].astype(int)):
        sizes[f"{w}x{h}"] = sizes.get(f"{w}x{h}", 0) + 1
    has_box = np.isfinite(boxes["area"])
    box = {"count": int(has_box.sum())}
    if has_box.any():
        box.update({
            "area": summarize(boxes["area"]), "cx": summarize(boxes["cx"]),
            "cy": summarize(boxes["cy"]),
            "touching_border_share": float(np.nanmean(boxes["touches"])),
            "full_frame_share": float(np.mean(boxes["area"][has_box] >= 0.95)),
            "left_share": float(np.mean(boxes["cx"][has_box] < 0.5)),
            "right_share": float(np.mean(boxes["cx"][has_box] > 0.5)),
        })
    return {"images": n, "grayscale": {"count": gray, "share": gray / n if n else 0.0},
            "sizes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
            "stats": {k: summarize(values[k]) for k in STATS}, "boxes": box}


def per_class(values: dict[str, np.ndarray], boxes: dict[str, np.ndarray], labels: np.ndarray,
              class_ids: Sequence[str], class_names: Sequence[str]) -> list[dict]:
    """One row per class with images: count, grayscale count and share, mean of every
    :data:`STATS` entry (None without finite values), median box area and share of boxes at
    the border.
    ``labels``: (N,) class indices into ``class_ids``/``class_names``."""
    rows = []
    for c, (cid, name) in enumerate(zip(class_ids, class_names)):
        m = labels == c
        if not m.any():
            continue
        gray = values["grayscale"][m]
        row = {"class_id": cid, "name": name, "images": int(m.sum()),
               "grayscale_count": int(np.nansum(gray)), "grayscale_share": float(gray.mean())}
        for k in STATS:
            v = values[k][m]
            row[k] = float(np.nanmean(v)) if np.isfinite(v).any() else None
        area = boxes["area"][m]
        row["box_area_median"] = float(np.nanmedian(area)) if np.isfinite(area).any() else None
        t = boxes["touches"][m]
        row["touching_border_share"] = float(np.nanmean(t)) if np.isfinite(t).any() else None
        rows.append(row)
    return rows


# When a per-class count (e.g. grayscale images) counts as held by a few classes: order the
# classes by their own share (count / images) and cut the top quarter (at least one class)
# at its largest drop between consecutive shares; those top classes are the holders when
# their pooled share is at least CONCENTRATION_MIN_SHARE and CONCENTRATION_RATIO times the
# share of every other class, and the signal counts at least CONCENTRATION_MIN_COUNT images.
CONCENTRATION_MAX_FRACTION = 0.25
CONCENTRATION_MIN_SHARE = 0.1
CONCENTRATION_RATIO = 4.0
CONCENTRATION_MIN_COUNT = 3


def concentrated_classes(counts: np.ndarray, images: np.ndarray) -> list[int]:
    """Indices of the few classes that hold a per-class count (e.g. grayscale images) by the
    rule above, highest share first; [] when it is spread over the classes.

    ``counts``, ``images``: (C,) per class, the signal's images and all its images.
    """
    counts = np.asarray(counts, np.float64)
    images = np.asarray(images, np.float64)
    if counts.sum() < CONCENTRATION_MIN_COUNT or len(counts) < 2:
        return []
    shares = counts / np.maximum(images, 1)
    order = np.argsort(-shares, kind="stable")
    most = max(1, int(CONCENTRATION_MAX_FRACTION * len(counts)))
    drops = shares[order][:most] - shares[order][1:most + 1]
    cut = int(np.argmax(drops)) + 1
    top = order[:cut]
    held = counts[top].sum() / images[top].sum()
    if held < CONCENTRATION_MIN_SHARE or held < CONCENTRATION_RATIO * shares[order[cut]]:
        return []
    return [int(i) for i in top]


def concentration(rows: list[dict], stat: str = "grayscale") -> dict | None:
    """Where ``stat``'s images (the rows' ``<stat>_count``) sit when a few classes hold them
    (:func:`concentrated_classes`), else None: ``{"stat", "count", "classes", "holders":
    [{class_id, name, count, images, share}], "held", "held_share", "rest": {"classes",
    "count", "images", "share"}}``; ``held_share`` is the holders' part of ``count``."""
    counts = np.array([r[f"{stat}_count"] for r in rows], np.float64)
    images = np.array([r["images"] for r in rows], np.float64)
    top = concentrated_classes(counts, images)
    if not top:
        return None
    rest = [i for i in range(len(rows)) if i not in top]
    held, rest_images = int(counts[top].sum()), int(images[rest].sum())
    return {"stat": stat, "count": int(counts.sum()), "classes": len(rows),
            "holders": [{"class_id": rows[i]["class_id"], "name": rows[i]["name"],
                         "count": int(counts[i]), "images": int(images[i]),
                         "share": float(counts[i] / images[i])} for i in top],
            "held": held, "held_share": held / float(counts.sum()),
            "rest": {"classes": len(rest), "count": int(counts[rest].sum()),
                     "images": rest_images,
                     "share": float(counts[rest].sum() / rest_images) if rest_images else 0.0}}


def concentration_text(held: dict) -> str:
    """:func:`concentration`'s result in words, e.g. ``held by 1 of 10 classes (zebra 10 of
    10 images, 100%), which hold 10 of the 12 grayscale images (83%); the other 9 classes: 2
    of 90 (2.2%)``."""
    rest = held["rest"]
    holders = "; ".join(f"{h['name']} {h['count']} of {h['images']} images, {h['share']:.0%}"
                        for h in held["holders"])
    return (f"held by {len(held['holders'])} of {held['classes']} classes ({holders}), which "
            f"hold {held['held']} of the {held['count']} {held['stat']} images "
            f"({held['held_share']:.0%}); the other {rest['classes']} classes: {rest['count']} "
            f"of {rest['images']} ({rest['share']:.1%})")


def class_outliers(rows: list[dict], z: float = 2.0) -> list[dict]:
    """Classes whose mean of a statistic lies more than ``z`` sd from the mean over classes."""
    out = []
    keys = list(STATS) + ["grayscale_share", "box_area_median", "touching_border_share"]
    for k in keys:
        vals = np.array([r[k] if r[k] is not None else np.nan for r in rows], np.float64)
        ok = np.isfinite(vals)
        if ok.sum() < 3 or np.nanstd(vals) == 0:
            continue
        zs = (vals - np.nanmean(vals)) / np.nanstd(vals)
        for r, v, zz in zip(rows, vals, zs):
            if np.isfinite(zz) and abs(zz) > z:
                out.append({"name": r["name"], "class_id": r["class_id"], "stat": k,
                            "value": float(v), "classes_mean": float(np.nanmean(vals)),
                            "z": round(float(zz), 2)})
    return sorted(out, key=lambda d: -abs(d["z"]))


def image_outliers(values: dict[str, np.ndarray], paths: Sequence[str], root: Path,
                   z: float = 3.5, top: int = 5) -> dict:
    """Per statistic the ``top`` images furthest out by robust z (median/MAD) > ``z``:
    {statistic: [{path (relative to ``root``), value, robust_z}]}."""
    out = {}
    for k in ("brightness", "contrast", "colourfulness", "sharpness", "noise", "jpeg_quality"):
        v = values[k]
        ok = np.isfinite(v)
        if ok.sum() < 5:
            continue
        med = np.median(v[ok])
        mad = np.median(np.abs(v[ok] - med)) * 1.4826
        if mad == 0:
            continue
        zs = (v - med) / mad
        idx = [i for i in np.argsort(-np.abs(np.nan_to_num(zs)))[:top] if abs(zs[i]) > z]
        if idx:
            out[k] = [{"path": _rel(paths[i], root), "value": float(v[i]),
                       "robust_z": round(float(zs[i]), 1)} for i in idx]
    return out


def _rel(path: str, root: Path) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return str(path)


def compare_splits(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per statistic: mean of ``a`` and ``b``, standardised difference d = (a-b)/pooled sd,
    and the two-sample Kolmogorov-Smirnov statistic and p-value (scipy)."""
    from scipy.stats import ks_2samp

    out = {}
    for k in STATS:
        x, y = a[k][np.isfinite(a[k])], b[k][np.isfinite(b[k])]
        if len(x) < 2 or len(y) < 2:
            continue
        pooled = math.sqrt((x.var() + y.var()) / 2) or 1.0
        ks = ks_2samp(x, y)
        d = float((x.mean() - y.mean()) / pooled)
        out[k] = {"mean_a": float(x.mean()), "mean_b": float(y.mean()), "d": d,
                  "ks": float(ks.statistic), "p": float(ks.pvalue),
                  "differs": bool(abs(d) >= 0.2 and ks.pvalue < 0.01)}
    return out


def _columns(arr: np.ndarray) -> dict[str, np.ndarray]:
    return {c: arr[:, i] for i, c in enumerate(COLUMNS)}


# The size images are measured at unless told otherwise: the last phase of every built-in
# config, where a recipe's pixel-level ranges (noise, blur, sharpening) matter most.
DEFAULT_MEASURE_SIZE = 64


def inspect_dataset(data, split: str = "val", compare: str | None = "train",
                    workers: int | None = None, progress: bool = False,
                    size: int | None = DEFAULT_MEASURE_SIZE) -> dict[str, Any]:
    """Measure every image of ``split`` (and of ``compare``, unless None or the same), each
    resized to ``size`` px as training sees it (None: at the stored resolution), so the
    pixel statistics and the ranges suggested from them fit the training size.

    ``data``: a dataset folder or a :class:`~augmine.data.dataset.DatasetIndex`. Returns a
    JSON-safe report dict (summary, boxes, per-class rows, ``[class id, name]`` of the classes
    without images in the split, the statistics a few classes hold
    (``concentrated``: :func:`concentration`), outliers, comparison) plus the
    key ``"_images"``: per-image arrays (``paths``, ``labels``, each of :data:`COLUMNS`,
    box ``area``/``cx``/``cy``/``touches``) for :func:`write_report` and plots.
    """
    from augmine.data.dataset import DatasetIndex
    from augmine.data.dataset import load_index

    index = data if isinstance(data, DatasetIndex) else load_index(data)
    sp = index.split(split)
    t0 = time.perf_counter()
    vals = _columns(measure_paths(sp.paths, workers, progress, desc=f"inspecting {split}",
                                  size=size))
    bx = box_stats(sp.boxes, vals["height"], vals["width"])
    report: dict[str, Any] = {
        "root": str(index.root), "split": split, "workers": workers or os.cpu_count() or 1,
        "measured_size": size,
        **split_summary(vals, bx)}
    report["per_class"] = per_class(vals, bx, sp.labels, index.class_ids, index.class_names)
    measured = {r["class_id"] for r in report["per_class"]}
    report["unmeasured_classes"] = [[c, n] for c, n in zip(index.class_ids, index.class_names)
                                    if c not in measured]
    gray = concentration(report["per_class"], "grayscale")
    report["concentrated"] = {"grayscale": gray} if gray else {}
    report["outliers"] = {"classes": class_outliers(report["per_class"]),
                          "images": image_outliers(vals, sp.paths, index.root)}
    images = {"paths": [_rel(p, index.root) for p in sp.paths], "labels": sp.labels,
              **vals, **{f"box_{k}": v for k, v in bx.items()}}
    report["comparison"] = None
    if compare and compare != split and compare in index.splits:
        other = index.split(compare)
        ovals = _columns(measure_paths(other.paths, workers, progress,
                                       desc=f"inspecting {compare}", size=size))
        obx = box_stats(other.boxes, ovals["height"], ovals["width"])
        report["comparison"] = {"split": compare, **split_summary(ovals, obx),
                                "differences": compare_splits(vals, ovals)}
        images["_compare"] = {**ovals, **{f"box_{k}": v for k, v in obx.items()}}
    report["seconds"] = round(time.perf_counter() - t0, 3)
    report["_images"] = images
    return report

