"""Validation-set statistics that justify a recipe: ``augmine inspect``.

Per image (pure functions over an RGB uint8 array, see :func:`image_stats`):
grayscale or not, mean brightness (luma, 0-255), RMS contrast (luma standard deviation,
0-255), colourfulness (Hasler & Suesstrunk 2003), colour cast (mean R-G and (R+G)/2-B),
sharpness (variance of the Laplacian), noise (Immerkaer's fast sigma estimate, 0-255)
and, for JPEGs, the IJG quality that matches the file's quantisation table.
Per box (:func:`box_stats`): area fraction of the frame, centre, touching the border.

:func:`inspect_dataset` measures a split (and the train split to compare against) in
parallel, :func:`write_report` writes ``inspection.json``, ``images.csv`` and
``histograms.png``, :func:`format_report` renders the tables the CLI prints, and
:func:`suggest_recipe` turns the measurements into a recipe whose ``why:`` lines quote them.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .dataset import decode_image
from .errors import AugmineError

# Per-image measurements, in column order of the arrays :func:`measure_paths` returns.
COLUMNS = ("height", "width", "grayscale", "brightness", "contrast", "colourfulness",
           "cast_rg", "cast_yb", "sharpness", "noise", "jpeg_quality")
# The ones summarised, compared and plotted (with a unit for people).
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
# Below this many images the work runs in-process: starting workers costs more.
PARALLEL_MIN_IMAGES = 4000
_CHUNK = 256

# IJG (libjpeg) standard luminance quantisation table (Annex K of the JPEG standard).
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)


def _ijg_table_sums() -> np.ndarray:
    q = np.arange(1, 101, dtype=np.float64)[:, None]
    scale = np.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    tables = np.clip(np.floor((_IJG_LUMA[None, :] * scale + 50.0) / 100.0), 1, 255)
    return tables.sum(axis=1)


_IJG_SUMS = _ijg_table_sums()


# --------------------------------------------------------------------------- per image

def _luma_quant_table(data: bytes) -> list[int] | None:
    """The 64 values of quantisation table 0 from a JPEG header (None if absent).

    Hand-written DQT scan: Pillow exposes the tables too, but opening a file with it costs
    ~100 us, more than decoding a 64 px JPEG; this walk over the header markers costs ~5 us.
    """
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more tables
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if marker == 0xDB:
            j, end = i + 4, min(i + 2 + length, n)
            while j < end:
                precision, table_id = data[j] >> 4, data[j] & 0x0F
                size = 128 if precision else 64
                raw = data[j + 1:j + 1 + size]
                if table_id == 0 and len(raw) == size:
                    if precision:
                        return [(raw[k] << 8) | raw[k + 1] for k in range(0, 128, 2)]
                    return list(raw)
                j += 1 + size
        i += 2 + length
    return None


def jpeg_quality(data: bytes) -> float:
    """IJG quality (1-100) whose luminance table matches the JPEG ``data``; NaN if not a JPEG.

    Matching a table to the libjpeg quality formula is hand-written (no library in the stack
    offers it). The match uses the table's sum, so zig-zag order does not matter; files not
    written by libjpeg-style encoders get the nearest equivalent quality.
    """
    if data[:2] != b"\xff\xd8":
        return math.nan
    table = _luma_quant_table(data)
    if table is None:
        return math.nan
    return float(np.argmin(np.abs(_IJG_SUMS - float(sum(table)))) + 1)


def image_stats(img: np.ndarray) -> dict[str, float]:
    """Statistics of one RGB uint8 image (H, W, 3) as a dict keyed like :data:`COLUMNS`
    (without ``jpeg_quality``, which needs the file bytes: :func:`jpeg_quality`)."""
    import cv2

    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    h, w = img.shape[:2]
    img = np.ascontiguousarray(img)
    f = img.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    gray_u8 = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    luma = gray_u8.astype(np.float32)
    # one cv2.meanStdDev call for the three planes (numpy's var is several times slower here)
    mean, std = cv2.meanStdDev(np.dstack([r - g, 0.5 * (r + g) - b, luma]))
    (rg_mean, yb_mean, luma_mean), (rg_sd, yb_sd, luma_sd) = mean.ravel(), std.ravel()
    colourfulness = math.sqrt(rg_sd ** 2 + yb_sd ** 2) + 0.3 * math.sqrt(rg_mean ** 2 + yb_mean ** 2)
    sharp = float(cv2.Laplacian(gray_u8, cv2.CV_64F).var())
    if h > 2 and w > 2:
        # Immerkaer (1996): sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * M|
        kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
        conv = cv2.filter2D(luma, -1, kernel, borderType=cv2.BORDER_CONSTANT)[1:-1, 1:-1]
        noise = math.sqrt(math.pi / 2) * float(np.abs(conv).sum()) / (6.0 * (w - 2) * (h - 2))
    else:
        noise = math.nan
    grayscale = bool(np.array_equal(img[..., 0], img[..., 1])
                     and np.array_equal(img[..., 1], img[..., 2]))
    return {"height": float(h), "width": float(w), "grayscale": float(grayscale),
            "brightness": float(luma_mean), "contrast": float(luma_sd),
            "colourfulness": float(colourfulness), "cast_rg": float(rg_mean),
            "cast_yb": float(yb_mean), "sharpness": sharp, "noise": noise}


def measure_file(path: str) -> np.ndarray:
    """(len(COLUMNS),) float64 statistics of the image file ``path``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AugmineError(f"{path}: cannot read ({exc.strerror}); check that the file exists")
    stats = image_stats(decode_image(data, str(path)))
    stats["jpeg_quality"] = jpeg_quality(data)
    return np.array([stats[c] for c in COLUMNS], np.float64)


def _measure_chunk(paths: Sequence[str]) -> np.ndarray:
    import cv2

    cv2.setNumThreads(1)
    return np.stack([measure_file(p) for p in paths]) if len(paths) else np.zeros((0, len(COLUMNS)))


def measure_paths(paths: Sequence[str], workers: int | None = None, progress: bool = False,
                  desc: str = "measuring") -> np.ndarray:
    """(N, len(COLUMNS)) statistics of image files, over ``workers`` processes (default: all
    cores, in-process below PARALLEL_MIN_IMAGES images) with a tqdm progress bar when ``progress``."""
    from tqdm.auto import tqdm

    paths = [str(p) for p in paths]
    if workers is None:  # auto: all cores, but in-process when starting workers costs more
        workers = (os.cpu_count() or 1) if len(paths) >= PARALLEL_MIN_IMAGES else 1
    chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    out: list[np.ndarray] = []
    with tqdm(total=len(paths), desc=desc, unit="img", disable=not progress) as bar:
        if workers <= 1 or len(chunks) < 2:
            for chunk in chunks:
                out.append(_measure_chunk(chunk))
                bar.update(len(chunk))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # never fork: the caller may have imported TensorFlow
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() \
                else "spawn"
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as ex:
                for chunk, res in zip(chunks, ex.map(_measure_chunk, chunks)):
                    out.append(res)
                    bar.update(len(chunk))
    return np.concatenate(out) if out else np.zeros((0, len(COLUMNS)))


# --------------------------------------------------------------------------- boxes

def box_stats(boxes: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> dict[str, np.ndarray]:
    """Per-box statistics from inclusive pixel boxes ``x0, y0, x1, y1`` (N, 4) (NaN: no box).

    Returns (N,) arrays: ``area`` (fraction of the frame), ``cx``, ``cy`` (centre as a
    fraction of width/height), ``touches`` (1.0 when the box reaches an image edge), NaN
    where there is no box. Tiny-ImageNet boxes are inclusive: 0 0 63 63 is the full frame.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    h = np.asarray(heights, np.float64)
    w = np.asarray(widths, np.float64)
    x0, y0, x1, y1 = boxes.T
    area = (np.clip(x1 - x0 + 1, 0, None) * np.clip(y1 - y0 + 1, 0, None)) / (w * h)
    cx = (x0 + x1 + 1) / 2.0 / w
    cy = (y0 + y1 + 1) / 2.0 / h
    touches = ((x0 <= 0) | (y0 <= 0) | (x1 >= w - 1) | (y1 >= h - 1)).astype(np.float64)
    touches[np.isnan(x0)] = np.nan
    return {"area": area, "cx": cx, "cy": cy, "touches": touches}


# --------------------------------------------------------------------------- summaries

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


def _split_summary(values: dict[str, np.ndarray], boxes: dict[str, np.ndarray]) -> dict:
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


def _per_class(values, boxes, labels, class_ids, class_names) -> list[dict]:
    rows = []
    for c, (cid, name) in enumerate(zip(class_ids, class_names)):
        m = labels == c
        if not m.any():
            continue
        row = {"class_id": cid, "name": name, "images": int(m.sum()),
               "grayscale_share": float(values["grayscale"][m].mean())}
        for k in STATS:
            v = values[k][m]
            row[k] = float(np.nanmean(v)) if np.isfinite(v).any() else None
        area = boxes["area"][m]
        row["box_area_median"] = float(np.nanmedian(area)) if np.isfinite(area).any() else None
        t = boxes["touches"][m]
        row["touching_border_share"] = float(np.nanmean(t)) if np.isfinite(t).any() else None
        rows.append(row)
    return rows


def _class_outliers(rows: list[dict], z: float = 2.0) -> list[dict]:
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


def _image_outliers(values, paths, root: Path, z: float = 3.5, top: int = 5) -> dict:
    """Per statistic the ``top`` images furthest out by robust z (median/MAD) > ``z``."""
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


# --------------------------------------------------------------------------- whole dataset

def _columns(arr: np.ndarray) -> dict[str, np.ndarray]:
    return {c: arr[:, i] for i, c in enumerate(COLUMNS)}


def inspect_dataset(data, split: str = "val", compare: str | None = "train",
                    workers: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Measure every image of ``split`` (and of ``compare``, unless None or the same).

    ``data``: a dataset folder or a :class:`~augmine.dataset.DatasetIndex`. Returns a
    JSON-safe report dict (summary, boxes, per-class rows, outliers, comparison) plus the
    key ``"_images"``: per-image arrays (``paths``, ``labels``, each of :data:`COLUMNS`,
    box ``area``/``cx``/``cy``/``touches``) for :func:`write_report` and plots.
    """
    from .dataset import DatasetIndex, load_index

    index = data if isinstance(data, DatasetIndex) else load_index(data)
    sp = index.split(split)
    t0 = time.perf_counter()
    vals = _columns(measure_paths(sp.paths, workers, progress, desc=f"inspecting {split}"))
    bx = box_stats(sp.boxes, vals["height"], vals["width"])
    report: dict[str, Any] = {
        "root": str(index.root), "split": split, "workers": workers or os.cpu_count() or 1,
        **_split_summary(vals, bx)}
    report["per_class"] = _per_class(vals, bx, sp.labels, index.class_ids, index.class_names)
    report["outliers"] = {"classes": _class_outliers(report["per_class"]),
                          "images": _image_outliers(vals, sp.paths, index.root)}
    images = {"paths": [_rel(p, index.root) for p in sp.paths], "labels": sp.labels,
              **vals, **{f"box_{k}": v for k, v in bx.items()}}
    report["comparison"] = None
    if compare and compare != split and compare in index.splits:
        other = index.split(compare)
        ovals = _columns(measure_paths(other.paths, workers, progress,
                                       desc=f"inspecting {compare}"))
        obx = box_stats(other.boxes, ovals["height"], ovals["width"])
        report["comparison"] = {"split": compare, **_split_summary(ovals, obx),
                                "differences": compare_splits(vals, ovals)}
        images["_compare"] = {**ovals, **{f"box_{k}": v for k, v in obx.items()}}
    report["seconds"] = round(time.perf_counter() - t0, 3)
    report["_images"] = images
    return report


def write_report(report: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``inspection.json``, ``images.csv`` (one row per image) and ``histograms.png``
    (one panel per statistic, compared split overlaid) into ``out_dir``, atomically."""
    import csv
    import io

    from . import atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    public = {k: v for k, v in report.items() if not k.startswith("_")}
    paths = {"json": atomic.write_json(out_dir / "inspection.json", _json_safe(public))}
    images = report["_images"]
    cols = ["path", "label"] + list(COLUMNS) + ["box_area", "box_cx", "box_cy", "box_touches"]
    buf = io.StringIO()
    wr = csv.writer(buf)
    wr.writerow(cols)
    for i, p in enumerate(images["paths"]):
        row = [p, int(images["labels"][i])]
        for c in cols[2:]:
            v = float(images[c][i])
            row.append("" if not math.isfinite(v) else (int(v) if v.is_integer() else round(v, 4)))
        wr.writerow(row)
    paths["csv"] = atomic.write_text(out_dir / "images.csv", buf.getvalue())
    paths["png"] = plot_histograms(report, out_dir / "histograms.png")
    return paths


def plot_histograms(report: dict[str, Any], out: str | os.PathLike) -> Path:
    """A PNG with one histogram per statistic (density; the compared split overlaid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .atomic import atomic_path

    images = report["_images"]
    other = images.get("_compare")
    keys = list(STATS) + ["box_area"]
    ncol = 3
    nrow = math.ceil(len(keys) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow))
    for ax, k in zip(axes.ravel(), keys):
        a = np.asarray(images[k], np.float64)
        a = a[np.isfinite(a)]
        if not len(a):
            ax.set_title(f"{k}: no data", fontsize=9)
            ax.axis("off")
            continue
        b = None
        if other is not None:
            b = np.asarray(other[k], np.float64)
            b = b[np.isfinite(b)]
        both = np.concatenate([a, b]) if b is not None and len(b) else a
        lo, hi = np.percentile(both, [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 31)
        ax.hist(np.clip(a, bins[0], bins[-1]), bins=bins, density=True, alpha=0.6,
                label=f"{report['split']} (n={len(a)})")
        if b is not None and len(b):
            ax.hist(np.clip(b, bins[0], bins[-1]), bins=bins, density=True, histtype="step",
                    linewidth=1.5, label=f"{report['comparison']['split']} (n={len(b)})")
        ax.axvline(np.median(a), color="k", linestyle="--", linewidth=0.8)
        ax.set_title(f"{k} ({STATS.get(k, 'fraction of frame')})", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(keys):]:
        ax.axis("off")
    fig.suptitle(f"{Path(report['root']).name}: per-image statistics "
                 f"(grayscale {report['grayscale']['share']:.1%})", fontsize=11)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return Path(out)


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# --------------------------------------------------------------------------- text tables

def _fmt(v, nd=1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def format_report(report: dict[str, Any], max_classes: int = 30) -> str:
    """The tables ``augmine inspect`` prints (plain text, fixed-width)."""
    lines = []
    cmp = report.get("comparison")
    lines.append(f"{report['root']}  split {report['split']}: {report['images']} images "
                 f"({', '.join(f'{k}: {v}' for k, v in list(report['sizes'].items())[:3])}), "
                 f"grayscale {report['grayscale']['count']} ({report['grayscale']['share']:.1%})"
                 + (f"; {cmp['split']}: {cmp['images']} images, grayscale "
                    f"{cmp['grayscale']['share']:.1%}" if cmp else "")
                 + f"  [{report['seconds']:.1f} s]")
    lines.append("")
    head = f"{'statistic':<14}{'mean':>8}{'sd':>8}{'p5':>8}{'median':>8}{'p95':>8}"
    if cmp:
        head += f"  {cmp['split'] + ' mean':>11}{'d':>7}{'KS':>6}"
    lines.append(head)
    for k, unit in STATS.items():
        s = report["stats"].get(k)
        if not s:
            continue
        row = (f"{k:<14}{s['mean']:>8.1f}{s['sd']:>8.1f}{s['p5']:>8.1f}{s['median']:>8.1f}"
               f"{s['p95']:>8.1f}")
        if cmp and k in cmp["differences"]:
            d = cmp["differences"][k]
            row += f"  {d['mean_b']:>11.1f}{d['d']:>7.2f}{d['ks']:>6.2f}" + (
                "  <- differs" if d["differs"] else "")
        lines.append(row + f"   ({unit})")
    b = report["boxes"]
    if b.get("count"):
        lines.append("")
        lines.append(f"boxes ({b['count']}): area median {b['area']['median']:.0%} of the frame "
                     f"(p10 {b['area']['p10']:.0%}, p90 {b['area']['p90']:.0%}), "
                     f"{b['touching_border_share']:.0%} touch the border, "
                     f"{b['full_frame_share']:.0%} fill the frame; centre x "
                     f"{b['cx']['mean']:.2f} (sd {b['cx']['sd']:.2f}), y {b['cy']['mean']:.2f} "
                     f"(sd {b['cy']['sd']:.2f}); left/right of centre "
                     f"{b['left_share']:.0%}/{b['right_share']:.0%}")
    rows = report["per_class"]
    if rows:
        lines.append("")
        lines.append(f"{'class':<24}{'n':>5}{'gray':>6}{'bright':>8}{'contr':>7}{'colour':>8}"
                     f"{'sharp':>8}{'noise':>7}{'jpegQ':>7}{'box':>6}{'edge':>6}")
        for r in rows[:max_classes]:
            lines.append(
                f"{r['name'][:23]:<24}{r['images']:>5}{r['grayscale_share']:>6.0%}"
                f"{_fmt(r['brightness']):>8}{_fmt(r['contrast']):>7}{_fmt(r['colourfulness']):>8}"
                f"{_fmt(r['sharpness'], 0):>8}{_fmt(r['noise']):>7}{_fmt(r['jpeg_quality'], 0):>7}"
                + (f"{r['box_area_median']:>6.0%}" if r['box_area_median'] is not None else f"{'-':>6}")
                + (f"{r['touching_border_share']:>6.0%}" if r['touching_border_share'] is not None
                   else f"{'-':>6}"))
        if len(rows) > max_classes:
            lines.append(f"... {len(rows) - max_classes} more classes (see inspection.json)")
    outl = report["outliers"]["classes"]
    if outl:
        lines.append("")
        lines.append("class outliers (|z| > 2 over class means): " + "; ".join(
            f"{o['name']} {o['stat']} {o['value']:.3g} (z {o['z']:+.1f})" for o in outl[:8]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- suggestion

def _r(x: float, nd: int = 2) -> float:
    return float(round(float(x), nd))


def suggest_recipe(stats: dict[str, Any], name: str = "suggested") -> dict[str, Any]:
    """A recipe dict (``name``, ``description``, ``transforms``) derived from an
    :func:`inspect_dataset` report; every ``why:`` quotes the numbers it was set from.

    Rules (each a plain heuristic, the numbers are in the why lines):
    crop scale from the box areas, flip from the left/right balance of box centres,
    translation from the spread of the centres, brightness/contrast limits from the spread
    of per-image brightness and contrast (relative to 255 and to the median contrast),
    hue/saturation from colourfulness spread, RGB shift from colour-cast spread, ToGray
    probability = grayscale share, blur/sharpen from the sharpness spread, noise from the
    measured noise level, JPEG quality range from the measured qualities.
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
                         "scenes are as likely as the originals"})
        tx = _r(min(max(b["cx"]["sd"], b["cy"]["sd"]), 0.2))
        t.append({"transform": "Affine", "p": 0.5,
                  "why": f"box centres spread sd {b['cx']['sd']:.2f} (x) / {b['cy']['sd']:.2f} "
                         f"(y) of the frame: shifts of up to {tx:.0%} and small turns keep "
                         "objects where val puts them",
                  "translate_percent": [-tx, tx], "rotate": [-10, 10], "scale": [0.9, 1.1],
                  "border_mode": 1})
    else:
        t.append({"transform": "RandomResizedCrop", "p": 1.0,
                  "why": f"no boxes in the annotations ({n} images): moderate crops of 50-100% "
                         "of the area", "scale": [0.5, 1.0], "area_for_downscale": "image"})
        t.append({"transform": "HorizontalFlip", "p": 0.5,
                  "why": "no boxes to measure left/right balance; flip is safe for natural images"})
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
                     "and small hue shifts cover it",
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
    t.append({"transform": "ToGray", "p": pg,
              "why": f"{stats['grayscale']['count']} of {n} images ({gray:.1%}) are grayscale: "
                     f"p {pg} (about twice that share) teaches colour-free shapes"})
    low_c = contr["p10"]
    t.append({"transform": "CLAHE", "p": 0.2,
              "why": f"the lowest-contrast tenth has RMS contrast below {low_c:.0f}/255 (median "
                     f"{contr['median']:.0f}): local equalisation mimics the flat ones "
                     "made readable and vice versa", "clip_limit": [1.0, 3.0]})
    ratio = sharp["p90"] / max(sharp["p10"], 1e-6)
    t.append({"transform": "GaussianBlur", "p": 0.2,
              "why": f"sharpness (Laplacian variance) spans {sharp['p10']:.0f}-{sharp['p90']:.0f} "
                     f"(p10-p90, {ratio:.0f}x): a light blur moves sharp images toward the "
                     "soft tenth", "blur_limit": [3, 3], "sigma_limit": [0.3, 1.0]})
    t.append({"transform": "Sharpen", "p": 0.2,
              "why": f"the same {ratio:.0f}x sharpness spread the other way: median "
                     f"{sharp['median']:.0f}, p90 {sharp['p90']:.0f}",
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
                         "fill it, so objects are often partly visible: 1-2 holes of 10-25% "
                         "of the side teach partial views",
                  "num_holes_range": [1, 2], "hole_height_range": [0.1, 0.25],
                  "hole_width_range": [0.1, 0.25]})
    dark = bright["p10"]
    brightp = bright["p90"]
    t.append({"transform": "RandomGamma", "p": 0.2,
              "why": f"a tenth of the images are darker than {dark:.0f}/255 and a tenth brighter "
                     f"than {brightp:.0f}/255: gamma 0.8-1.2 reshapes mid-tones like those "
                     "exposures", "gamma_limit": [80, 120]})
    return {"name": name,
            "description": f"Suggested by augmine inspect from {n} {stats['split']} images of "
                           f"{Path(stats['root']).name}; review the why lines and previews.",
            "transforms": t}
