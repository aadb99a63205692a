"""Rendering an :func:`~augmine.augment.inspection.inspect_dataset` report: the text tables the CLI
prints, the histogram PNG, and the files ``inspection.json``, ``images.csv``, ``histograms.png``."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from augmine.augment.inspection.measure import COLUMNS
from augmine.augment.inspection.suggest import CONCENTRATED_TRANSFORMS
from augmine.augment.inspection.summary import STATS, concentration_text


def write_report(report: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``inspection.json``, ``images.csv`` (one row per image) and ``histograms.png``
    (one panel per statistic, compared split overlaid) into ``out_dir``, atomically."""
    import csv
    import io

    from augmine.core import atomic

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


def check_writable(folders: dict[str, Path], files: dict[str, Path],
                   command: str = "inspect") -> None:
    """A one-line :class:`~augmine.core.errors.AugmineError` naming the first output place
    that cannot be written, for a command to call before any work: ``folders`` and
    ``files`` map an option (``--out``) to the folder written into or the file written. A
    folder that does not exist yet is checked where it would be made."""
    import tempfile

    from augmine.core.errors import AugmineError

    places = [(option, Path(p), Path(p)) for option, p in folders.items()]
    for option, path in files.items():
        path = Path(path)
        if path.is_dir():
            raise AugmineError(f"{path} is a folder; {option} takes a file name (e.g. "
                               f"{path / 'suggested.yaml'})")
        places.append((option, path, path.parent))
    for option, path, folder in places:
        existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
        if not existing.is_dir():
            raise AugmineError(f"{existing} is a file, so `augmine {command}` cannot write "
                               f"{path} ({option}); choose another place")
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as exc:
            raise AugmineError(f"cannot write {path} ({option}): {existing} is not writable "
                               f"({(exc.strerror or str(exc)).lower()}); choose a writable "
                               f"place or make {existing} writable, then run `augmine {command}` "
                               "again (nothing was measured)") from None


def plot_histograms(report: dict[str, Any], out: str | os.PathLike) -> Path:
    """A PNG with one histogram per statistic (density; the compared split overlaid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from augmine.core.atomic import atomic_path

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
    at = report.get("measured_size")
    lines.append(f"pixel statistics measured on images resized to {at} x {at} px, as training "
                 f"at {at} px sees them (--size)" if at else
                 "pixel statistics measured at the stored resolution (--size 0); training "
                 "sees resized images, so noise, sharpness and blur ranges may not fit")
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
    for held in (report.get("concentrated") or {}).values():
        lines.append("")
        lines.append(f"{held['stat']} is concentrated, {concentration_text(held)}; --suggest "
                     f"writes {CONCENTRATED_TRANSFORMS[held['stat']]} for those classes only "
                     "(classes: switches it off for the others)")
    outl = report["outliers"]["classes"]
    if outl:
        lines.append("")
        lines.append("class outliers (|z| > 2 over class means): " + "; ".join(
            f"{o['name']} {o['stat']} {o['value']:.3g} (z {o['z']:+.1f})" for o in outl[:8]))
    return "\n".join(lines)

