"""``augmine recipe``: validate, show, preview and export augmentation recipes."""

from __future__ import annotations

from pathlib import Path

import click

from augmine.core.runtime import command_line
HALF_HELP = ("Val images read: all, or the selection half only (the split mining uses, seeded "
             "by the run's config seed), so that `recipe compare --measure-half` scores on "
             "images it never read.")


@click.group("recipe")
def command() -> None:
    """Validate, show, preview and export augmentation recipes (YAML files or built-in
    names: light, none, tiny-imagenet-14)."""


@command.command("validate")
@click.argument("recipe")
@click.option("--data", "data", type=click.Path(path_type=Path), default=None,
              help="Dataset folder: also check that every class override names one of its "
                   "classes.")
def validate(recipe: str, data: Path | None) -> None:
    """Check RECIPE (a file, or a built-in name such as light) with albumentations' own
    parameter checks, augmine's sanity bounds and its class overrides (against --data's
    classes when given); prints one line per problem-free recipe, an Error line otherwise."""
    from augmine.augment.compose import build_compose
    from augmine.augment.recipes import load_recipe
    from augmine.augment.compose import class_overrides, recipe_for_class

    r = load_recipe(recipe)
    if data is not None:
        from augmine.data.dataset import load_index

        index = load_index(data)
        class_overrides(r, index.class_ids, index.class_names)
    variants = [r] + [recipe_for_class(r, o) for o in r.classes.values()]
    for size in (16, 32, 64):
        for v in variants:
            build_compose(v, size)
    extra = f" and {len(r.classes)} class overrides" if r.classes else ""
    extra += f" (each a class of {data})" if r.classes and data is not None else ""
    click.echo(f"OK {r.path}: {r.name}, {len(r)} transforms{extra}, builds at 16, 32 and 64 px")


@command.command("show")
@click.argument("recipe")
def show(recipe: str) -> None:
    """Print RECIPE as a table: transform, p, non-default arguments and why; then its class
    overrides."""
    import shutil
    import textwrap

    from augmine.augment.recipes import describe_args, load_recipe

    r = load_recipe(recipe)
    click.echo(f"{r.name}  ({r.path})")
    if r.description:
        click.echo(textwrap.fill(r.description, 100))
    click.echo("")
    width = max(80, min(shutil.get_terminal_size((120, 20)).columns, 160))
    rows = [(str(i), e["transform"], f"{float(e['p']):g}", describe_args(e), e.get("why", ""))
            for i, e in enumerate(r.transforms, 1)]
    if not rows:
        click.echo("no transforms: images are only resized to the phase size")
    else:
        _echo_table(rows, width)
    if r.classes:
        click.echo(f"\nclass overrides ({len(r.classes)}; by class id or name):")
        for key, o in r.classes.items():
            what = [f"strength {float(o['strength']):g}"] if "strength" in o else []
            what += [f"without {', '.join(o['without'])}"] if o.get("without") else []
            why = f"  ({' '.join(str(o['why']).split())})" if o.get("why") else ""
            click.echo(f"  {key}: {'; '.join(what) or 'no change'}{why}")


def _echo_table(rows: list[tuple[str, str, str, str, str]], width: int) -> None:
    """The transform table of ``show``: (number, transform, p, arguments, why) per row."""
    import textwrap

    w_name = max(len("transform"), *(len(x[1]) for x in rows))
    w_args = min(44, max(len("arguments"), *(len(x[3]) for x in rows)))
    head = f"{'#':>2}  {'transform':<{w_name}}  {'p':>5}  {'arguments':<{w_args}}  why"
    click.echo(head)
    click.echo("-" * min(width, len(head) + 40))
    why_w = max(30, width - (2 + 2 + w_name + 2 + 5 + 2 + w_args + 2))
    for num, name, p, args, why in rows:
        arg_lines = textwrap.wrap(args, w_args) or [""]
        why_lines = textwrap.wrap(" ".join(str(why).split()), why_w) or [""]
        for j in range(max(len(arg_lines), len(why_lines))):
            a = arg_lines[j] if j < len(arg_lines) else ""
            w = why_lines[j] if j < len(why_lines) else ""
            if j == 0:
                click.echo(f"{num:>2}  {name:<{w_name}}  {p:>5}  {a:<{w_args}}  {w}")
            else:
                click.echo(f"{'':>2}  {'':<{w_name}}  {'':>5}  {a:<{w_args}}  {w}")


@command.command("preview")
@click.argument("recipe")
@click.option("--data", "data", type=click.Path(path_type=Path), default=None,
              help="Dataset folder (default: augmine's generated dataset).")
@click.option("--class", "class_key", default=None,
              help="Class by human name or id (e.g. 'teddy bear' or n04399382); default: all.")
@click.option("-n", "n", default=16, show_default=True, help="Augmented samples in the grid.")
@click.option("--per-image", default=3, show_default=True,
              help="Augmented samples next to each original.")
@click.option("--size", default=64, show_default=True, help="Phase size in pixels.")
@click.option("--seed", default=0, show_default=True, help="Picks the images and the augmentations.")
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "val"]))
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("preview.png"),
              show_default=True, help="PNG file to write.")
def preview(recipe: str, data: Path | None, class_key: str | None, n: int, per_image: int,
            size: int, seed: int, split: str, out: Path) -> None:
    """Write a PNG grid of originals and RECIPE's augmented samples, labels drawn in (a class
    the recipe overrides under its own recipe)."""
    from augmine.data.dataset import load_index
    from augmine.augment.preview import preview_grid, write_preview
    from augmine.augment.recipes import load_recipe

    if data is None:
        from augmine.data.synth import ensure_default_dataset

        data = ensure_default_dataset(progress=True)
    r = load_recipe(recipe)
    index = load_index(data)
    grid = preview_grid(index, r, class_key, n=n, size=size, seed=seed, per_image=per_image,
                        split=split)
    write_preview(out, grid)
    click.echo(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]} px): {r.name} at {size} px, "
               f"{n} samples, seed {seed}")


@command.command("export")
@click.argument("recipe")
@click.option("--format", "fmt", type=click.Choice(["albumentations"]), default="albumentations",
              show_default=True, help="Output format: an A.save file (A.load reads it back).")
@click.option("--size", default=64, show_default=True,
              help="Phase size filled into the crops and the final resize.")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Output file; .yaml/.yml writes YAML, anything else JSON.")
def export(recipe: str, fmt: str, size: int, out: Path) -> None:
    """Export RECIPE at --size for use outside augmine: albumentations.load(OUT)."""
    from augmine.augment.compose import export_recipe
    from augmine.augment.recipes import load_recipe

    r = load_recipe(recipe)
    path = export_recipe(r, out, size=size)
    kind = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "json"
    click.echo(f"wrote {path}: albumentations Compose at {size} px; load it with "
               f"albumentations.load({str(path)!r}" + (", data_format='yaml')" if kind == "yaml"
                                                       else ")"))
    if r.classes:
        click.echo(f"note: its {len(r.classes)} class overrides are not in the file (a Compose "
                   "is one pipeline for every image); augmine applies them per class in "
                   "training")


@command.command("compare")
@click.argument("recipes", nargs=-1, required=True)
@click.option("--data", "data", type=click.Path(path_type=Path), required=True,
              help="Dataset folder (train/ and val/ splits).")
@click.option("--config", "config", required=True,
              help="Training config (file or built-in name, e.g. cpu-small): model, seed, "
                   "schedule and phases every arm shares.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Budget: one phase of this many epochs instead of the config's phases.")
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="Budget: one phase at this size (px) instead of the config's phases.")
@click.option("--strength", "strengths", default=None,
              help="Also sweep recipe strength, e.g. 0,0.5,1 (0 = no augmentation, "
                   "1 = as written).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Comparison folder [default: runs/compare-<arm>-vs-<arm>].")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train every arm this many times (config seed + 0..N-1: init, sampling, "
                   "augmentation); intervals then cover seeds and val images.")
@click.option("--measure-half", is_flag=True,
              help="Score on the measurement half of val only (the images `recipe tailor "
                   "--half selection` never read; split seed: the config's).")
@click.option("--arm", "arm", default=None, metavar="NAME[@SEED]",
              help="Train only this arm (at this seed) into --out, for a scheduler; run "
                   "without --arm for the table.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at once, as processes (one GPU each; else cores/N CPU threads).")
@click.option("--ray", "ray", default=None, metavar="ADDRESS",
              help="Train each missing run as a task on this Ray cluster (auto or "
                   "HOST:PORT; --out on a shared folder; needs augmine[ray]).")
@click.option("--dry-run", is_flag=True,
              help="Print the runs, their estimated time and folder; train nothing.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Keras progress bars while training.")
def compare(recipes: tuple[str, ...], data: Path, config: str, epochs: int | None,
            size: int | None, strengths: str | None, out: Path | None, seeds: int,
            measure_half: bool, arm: str | None, jobs: int, ray: str | None, dry_run: bool,
            progress: bool) -> None:
    """Train the same model from the same seed once per RECIPE (and per --strength) on the
    same data and print one table: final and best val top-1/top-5 with 95% bootstrap
    intervals, macro F1, train-val gap, images/s, and the paired differences against the
    first recipe. RECIPE@S compares that recipe at strength S only (e.g.
    `none tiny-imagenet-14@0.5 trivial-augment@1`: each recipe at its own strength). Runs
    are ordinary run folders: run the command again to resume a killed comparison or to
    reprint a finished one. Prints the runs and their estimated time first."""
    from augmine.experiments.compare import default_out, parse_strengths, plan_arms, run_comparison
    from augmine.experiments.compare_results import format_comparison

    levels = parse_strengths(strengths)
    out = out or default_out(plan_arms(recipes, levels))
    results = run_comparison(recipes, data, config, out, epochs=epochs, size=size,
                             strengths=levels, progress=progress, echo=click.echo,
                             seeds=seeds, measure_half=measure_half, arm=arm, jobs=jobs,
                             dry_run=dry_run, ray=ray)
    if results is None:
        return
    click.echo("")
    click.echo(format_comparison(results))
    click.echo(f"\nwrote {out}/ (one run folder per arm); see the curves: "
               f"{command_line('app', out)}")


@command.command("tune")
@click.argument("recipe")
@click.option("--data", "data", type=click.Path(path_type=Path), required=True,
              help="Dataset folder (train/ and val/ splits).")
@click.option("--config", "config", required=True,
              help="Training config (file or built-in name, e.g. cpu-20): the budget to "
                   "tune for.")
@click.option("--strength", "strengths", default="0,0.25,0.5,0.75,1", show_default=True,
              help="Strengths to try (0 = no augmentation, 1 = as written).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Budget: one phase of this many epochs instead of the config's phases.")
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="Budget: one phase at this size (px) instead of the config's phases.")
@click.option("-o", "--write", "write", type=click.Path(path_type=Path), default=None,
              help="Write the config that trained the chosen strength here (YAML).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Comparison folder [default: runs/tune-<recipe>].")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train every strength this many times (config seed + 0..N-1); chosen "
                   "on the mean over seeds, measured over seeds and images.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at once, as processes (as `recipe compare --jobs`).")
@click.option("--dry-run", is_flag=True,
              help="Print the runs, their estimated time and folder; train nothing.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Keras progress bars while training.")
def tune(recipe: str, data: Path, config: str, strengths: str, epochs: int | None,
         size: int | None, write: Path | None, out: Path | None, seeds: int, jobs: int,
         dry_run: bool, progress: bool) -> None:
    """Choose RECIPE's strength for a training budget: one run of CONFIG per strength,
    the best final top-1 chosen on one half of val and measured on the other (paired 95%
    intervals against every other strength); -o writes the config with that strength.
    Takes one training run per strength; run it again to resume."""
    from augmine.experiments.compare import parse_strengths
    from augmine.experiments.tune import format_tune, tune_strength

    result = tune_strength(recipe, data, config, parse_strengths(strengths), folder=out,
                           write=write, epochs=epochs, size=size, progress=progress,
                           echo=click.echo, seeds=seeds, jobs=jobs, dry_run=dry_run)
    if result is None:
        return
    click.echo("")
    for line in format_tune(result):
        click.echo(line)
    if write is not None:
        train = command_line("train", write, "--data", data, "--run-dir", "runs/tuned")
        click.echo(f"train it: {train}")


@command.command("affinity")
@click.argument("recipe")
@click.option("--run", "run", type=click.Path(path_type=Path), required=True,
              help="Run folder whose model is measured (the checkpoint `augmine evaluate` "
                   "uses, at the run's evaluation size).")
@click.option("--draws", type=click.IntRange(min=1), default=2, show_default=True,
              help="Augmented draws per val image and transform.")
@click.option("--seed", default=0, show_default=True, help="Seeds the draws and the bootstrap.")
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True,
              help="Transforms printed (the costliest overall).")
@click.option("--force", is_flag=True, help="Measure again even when a saved result matches.")
@click.option("--half", type=click.Choice(["all", "selection"]), default="all",
              show_default=True, help=HALF_HELP)
@click.option("--progress/--no-progress", default=True, show_default=True)
def affinity(recipe: str, run: Path, draws: int, seed: int, top: int, force: bool,
             half: str, progress: bool) -> None:
    """Accuracy drop per class of the run's model on val images augmented by each transform
    of RECIPE alone (forced to fire) and by the whole recipe, against clean images, with
    bootstrap 95% intervals. Writes affinity.json, affinity.csv and affinity.png into
    RUN/affinity/<recipe>/; a matching saved result is reused."""
    from augmine.train.affinity import format_affinity, measure_affinity, recipe_stem
    from augmine.runs.rundir import RunDir

    result = measure_affinity(run, recipe, draws=draws, seed=seed, progress=progress,
                              force=force, half=half)
    click.echo(format_affinity(result, top=top))
    folder = RunDir(run).affinity_dir(recipe_stem(recipe))
    click.echo(f"\nwrote {folder}/ (affinity.json, affinity.csv, affinity.png); the app's "
               f"Affinity page shows it: {command_line('app', run)}")


@command.command("tailor")
@click.argument("recipe")
@click.option("--run", "run", type=click.Path(path_type=Path), required=True,
              help="Run folder whose affinity decides the overrides (measured when missing).")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Tailored recipe file to write (.yaml).")
@click.option("--margin", type=click.FloatRange(min=0), default=0.10, show_default=True,
              help="How much more a transform must cost a class than the others (accuracy).")
@click.option("--draws", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--half", type=click.Choice(["all", "selection"]), default="all",
              show_default=True, help=HALF_HELP)
@click.option("--progress/--no-progress", default=True, show_default=True)
def tailor(recipe: str, run: Path, out: Path, margin: float, draws: int, seed: int,
           half: str, progress: bool) -> None:
    """Write RECIPE plus per-class overrides (`classes:`): a transform is switched off for a
    class whose drop under it is clearly worse than the other classes' (95% interval of the
    excess above zero and excess >= --margin); a class hurt so by the whole recipe gets
    strength 0.5. Every override's why quotes the numbers."""
    from augmine.train.affinity import tailor_recipe

    res = tailor_recipe(run, recipe, out, margin=margin, draws=draws, seed=seed,
                        progress=progress, half=half)
    names = dict(zip(res["affinity"]["class_ids"], res["affinity"]["class_names"]))
    click.echo(f"affinity of checkpoint {res['affinity']['checkpoint']} at "
               f"{res['affinity']['size']} px")
    for cid, entry in res["classes"].items():
        what = [f"strength {entry['strength']:g}"] if "strength" in entry else []
        what += [f"without {', '.join(entry['without'])}"] if entry.get("without") else []
        click.echo(f"{names.get(cid, cid)} ({cid}): {'; '.join(what)}")
        click.echo(f"    {entry['why']}")
    if not res["classes"]:
        click.echo(f"no class is hurt clearly more than the others (margin {margin:g}); "
                   "the recipe is written unchanged with `classes: {}`")
    click.echo(f"wrote {res['path']}: {len(res['classes'])} class override(s)")
