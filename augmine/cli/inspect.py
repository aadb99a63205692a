"""``augmine inspect``: validation-set statistics that justify a recipe."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--split", default="val", show_default=True, type=click.Choice(["val", "train"]),
              help="Split to measure.")
@click.option("--compare/--no-compare", default=True, show_default=True,
              help="Also measure the other split and compare.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for inspection.json, images.csv, histograms.png "
                   "[default: inspect-<dataset name>].")
@click.option("--suggest", type=click.Path(path_type=Path), default=None,
              help="Also write a recipe whose why: lines quote the measured numbers, and "
                   "beside it <name>-compare.yaml: the command comparing it (at strength 0.5 "
                   "and 1) against none.")
@click.option("--size", type=click.IntRange(min=0), default=64, show_default=True,
              help="Measure each image resized to this size (px), as training at that size "
                   "sees it; 0 = at the stored resolution.")
@click.option("--workers", type=int, default=None,
              help="Worker processes [default: all cores for large sets].")
def command(path: Path, split: str, compare: bool, out_dir: Path | None,
            suggest: Path | None, size: int, workers: int | None) -> None:
    """Measure the images of PATH (grayscale share, brightness, contrast, colourfulness,
    sharpness, noise, JPEG quality, object boxes), print tables, write JSON and PNGs."""
    import yaml

    from augmine.core import atomic
    from augmine.data.dataset import load_index
    from augmine.augment.inspection import (check_writable, format_report, inspect_dataset,
                                            suggest_recipe, write_report)
    from augmine.augment.inspection.suggest import comparison_plan
    from augmine.augment.recipes import dump_recipe, parse_recipe

    index = load_index(path)
    out_dir = out_dir or Path(f"inspect-{index.root.name}")
    check_writable({"--out": out_dir}, {"--suggest": suggest} if suggest is not None else {})
    other = "train" if split == "val" else "val"
    report = inspect_dataset(index, split=split, compare=other if compare else None,
                             workers=workers, progress=True, size=size or None)
    click.echo(format_report(report))
    files = write_report(report, out_dir)
    click.echo("")
    click.echo(f"wrote {files['json']}, {files['csv'].name}, {files['png'].name}")
    if suggest is not None:
        recipe = suggest_recipe(report, name=suggest.stem)
        text = dump_recipe(recipe)
        parse_recipe(recipe, str(suggest))  # what we write must load
        atomic.write_text(suggest, text)
        overrides = (f" and {len(recipe['classes'])} class overrides (classes:)"
                     if recipe.get("classes") else "")
        click.echo(f"wrote {suggest}: {len(recipe['transforms'])} transforms{overrides}; check "
                   f"it with `augmine recipe preview {suggest} --data {path}`")
        plan = comparison_plan(suggest, path)
        plan_path = suggest.with_name(f"{suggest.stem}-compare.yaml")
        atomic.write_text(plan_path, yaml.safe_dump(plan, sort_keys=False, width=100))
        click.echo(f"wrote {plan_path}: comparison plan; prove the recipe on your data with")
        click.echo(f"  {plan['command']}")
