"""``augmine data``: check, generate and download datasets."""

from __future__ import annotations

from pathlib import Path

import click

from augmine.core.runtime import command_line


@click.group("data")
def command() -> None:
    """Check, generate and download datasets."""


@command.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--skip-bad", is_flag=True,
              help="Leave corrupt or non-image files out (each is logged) instead of failing.")
def check(path: Path, skip_bad: bool) -> None:
    """Validate the dataset at PATH and print a summary.

    Every image is decoded, so corrupt and truncated files are found now rather than
    mid-training. Every problem of the tree (structure and images) is listed in one run,
    grouped, and the command fails (exit status 1) when there is any.
    """
    from collections import Counter

    import numpy as np

    from augmine.data.dataset import drop_bad_files, trainable_problems
    from augmine.data.dataset import scan_dataset
    from augmine.data.dataset import verify_index
    from augmine.core.errors import AugmineError

    structure: list[str] = []
    index, bad = scan_dataset(path, structure)
    report = verify_index(index, progress=True)
    bad = bad + report.bad
    structure += trainable_problems(index)
    if skip_bad:
        index = drop_bad_files(index, bad, skip_bad=True)
    click.echo(f"dataset   {index.root}  ({index.layout} layout)")
    click.echo(f"classes   {index.num_classes}")
    for name, split in index.splits.items():
        counts = index.class_counts(name)
        sizes = report.sizes.get(name, Counter())
        size_txt = ", ".join(f"{w}x{h}: {n:,}" for (h, w), n in sizes.most_common(3))
        if len(sizes) > 3:
            size_txt += f", {len(sizes) - 3} other sizes"
        click.echo(f"{name:<9} {len(split):,} images, {counts.min()}-{counts.max()} per class, "
                   f"{report.grayscale.get(name, 0):,} grayscale; sizes {size_txt or '-'}")
    boxes = sum(int((~np.isnan(s.boxes[:, 0])).sum())
                for s in index.splits.values())
    click.echo(f"boxes     {boxes:,} images with an object box")
    names = ", ".join(index.class_names[:6]) + (", ..." if index.num_classes > 6 else "")
    click.echo(f"names     {names}")
    shown_bad = [] if skip_bad else bad
    total = len(structure) + len(shown_bad)
    skipped = f"{len(index.skipped)} bad file(s) skipped" if index.skipped else ""
    if not total:
        click.echo(f"problems  {skipped or 'none'}")
        return
    click.echo(f"problems  {total} found" + (f" ({skipped})" if skipped else ""))
    if structure:
        click.echo(f"  dataset structure: {len(structure)}")
        for line in structure:
            click.echo(f"    {line}")
    by_reason: dict[str, list[str]] = {}
    for b in shown_bad:
        by_reason.setdefault(b.reason, []).append(b.path)
    for reason, paths in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        click.echo(f"  {reason}: {len(paths)}")
        for p in paths:
            click.echo(f"    {p}")
    parts = [f"{len(structure)} structural"] if structure else []
    if shown_bad:
        parts.append(f"{len(shown_bad)} bad file(s)")
    fix = "fix the ones listed above"
    if shown_bad:
        fix += ", or pass --skip-bad to leave the bad files out"
    raise AugmineError(f"{total} problem(s) in {index.root} ({', '.join(parts)}); {fix}")


@command.command("synth")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--classes", "num_classes", default=10, show_default=True, help="Number of classes.")
@click.option("--train-per-class", default=200, show_default=True)
@click.option("--val-per-class", default=50, show_default=True)
@click.option("--seed", default=0, show_default=True)
def synth(dest: Path, num_classes: int, train_per_class: int, val_per_class: int,
          seed: int) -> None:
    """Write a generated dataset in the Tiny-ImageNet layout to DEST.

    Classes are drawn shapes with colours and textures; some pairs differ only by a fine
    texture (the planted confusable pairs, listed in DEST/synth.json).
    """
    from augmine.data.synth import write_synthetic_dataset

    info = write_synthetic_dataset(dest, num_classes=num_classes,
                                   train_per_class=train_per_class,
                                   val_per_class=val_per_class, seed=seed, progress=True)
    click.echo(f"wrote {len(info.classes)} classes x ({train_per_class} train + "
               f"{val_per_class} val) images to {info.root}")
    for a, b in info.confusable_pairs:
        click.echo(f"confusable pair: {a} / {b}")


@command.command("download")
@click.argument("dest", default="data", type=click.Path(path_type=Path))
@click.option("--url", default=None, help="Download from this address instead (a mirror).")
@click.option("--md5", default=None, help="Expected MD5 of the archive at --url.")
@click.option("--no-extract", is_flag=True, help="Keep the verified zip, do not extract it.")
def download(dest: Path, url: str | None, md5: str | None, no_extract: bool) -> None:
    """Download Tiny-ImageNet (tiny-imagenet-200.zip, 237 MiB) into DEST (default ./data).

    Resumes a partial download, checks size and MD5, then extracts.
    """
    from dataclasses import replace

    from augmine.data.download import TINY_IMAGENET, download_archive

    archive = TINY_IMAGENET
    if url:
        archive = replace(archive, url=url, size=None, md5=md5,
                          filename=url.rstrip("/").rsplit("/", 1)[-1] or archive.filename)
    out = download_archive(dest, archive, progress=True, extract=not no_extract)
    click.echo(f"ready: {out}")
    if not no_extract:
        click.echo(f"next: {command_line('data', 'check', out)}")
