"""``augmine mine``: per-class analysis, oversampling plans and mining rounds on a run folder."""

from __future__ import annotations

import re
from pathlib import Path

import click

from augmine.rounds.arms import COMPARE_MODES, MODES, mode_phrases
from augmine.runs.rundir import RunDir

_RUN = click.Path(path_type=Path, file_okay=False)


@click.group("mine")
def command() -> None:
    """Find weak classes and confused pairs, plan oversampling, run mining rounds."""


def _stage_report(run: Path, stage: str | None) -> dict:
    from augmine.analysis.reports import load_stage_report
    from augmine.rounds.plans import RoundState

    if stage:
        return load_stage_report(RunDir.of(run).check(), stage)
    return RoundState.read(run).latest_report


@command.command("analyze")
@click.argument("run", type=_RUN)
@click.option("--stage", default=None, help="Stage to show (phase-N or round-N); default the latest.")
@click.option("--top", default=10, show_default=True, help="Confused pairs to list.")
@click.option("--all-classes", is_flag=True, help="List every class, not only the weakest 20.")
def analyze(run: Path, stage: str | None, top: int, all_classes: bool) -> None:
    """The per-class table and the most confused pairs of RUN; draws the stage's plots
    (f1.png, confusion.png) into its report where they are missing."""
    from augmine.analysis.metrics import describe_pair, describe_symmetric
    from augmine.analysis.reports import draw_report_plots
    from augmine.rounds.text import format_round_outcome

    rep = _stage_report(run, stage)
    size = f", {rep['size']} px" if rep.get("size") else ""
    top5 = rep.get("top5_accuracy")
    click.echo(f"{rep['stage']}{size}: accuracy {rep['accuracy']:.1%}"
               + (f", top-5 {top5:.1%}" if top5 is not None else "")
               + f", macro F1 {rep['macro_f1']:.3f} ({rep['num_samples']} val images)")
    rows = sorted(rep["per_class"], key=lambda c: (c["f1"], c["index"]))
    shown = rows if all_classes else rows[:20]
    click.echo(f"\n{'class':<32} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}")
    for c in shown:
        click.echo(f"{c['name'][:32]:<32} {c['precision']:>9.3f} {c['recall']:>7.3f} "
                   f"{c['f1']:>6.3f} {c['support']:>8}")
    if len(shown) < len(rows):
        click.echo(f"... {len(rows) - len(shown)} stronger classes (--all-classes lists them)")
    click.echo("\nmost confused (true -> predicted):")
    for p in rep["confused_pairs"][:top] or []:
        click.echo(f"  {describe_pair(p)}")
    if not rep["confused_pairs"]:
        click.echo("  none")
    click.echo("both directions:")
    for p in rep["symmetric_pairs"][:top]:
        click.echo(f"  {describe_symmetric(p)}")
    outcome = format_round_outcome(rep)
    if outcome:
        click.echo(f"\nround effect (from {rep['before']['stage']}):" if rep.get("effect") else
                   f"\nbefore ({rep['before']['stage']}) -> after:")
        for line in outcome:
            click.echo(line)
    try:
        plots = f" (plots: {', '.join(p.name for p in draw_report_plots(run, rep['stage']))})"
    except OSError as exc:        # a read-only run folder: the report is read, not drawn in
        plots = f" (plots not drawn: {exc.strerror}: {exc.filename})"
    click.echo(f"\nreport: {RunDir(run).report_file(rep['stage'], 'report.md')}{plots}")


_POLICY = click.Choice(["bottom-k", "threshold", "zscore"])


class _SchemaHelp(click.Option):
    """An option whose help names config defaults as ``{mining.epochs}``, filled from the
    config schema (:func:`augmine.runs.config.config_default`) only when help is shown."""

    def get_help_record(self, ctx):
        from augmine.runs.config import config_default

        self.help = re.sub(r"\{([\w.]+)\}", lambda m: str(config_default(m.group(1))),
                           self.help or "")
        return super().get_help_record(ctx)


@command.command("plan")
@click.argument("run", type=_RUN)
@click.option("--policy", type=_POLICY, default=None, cls=_SchemaHelp,
              help="How to choose weak classes [config mining.policy, else {mining.policy}].")
@click.option("--k", type=int, default=None, help="bottom-k: number of classes [config, else a tenth of the classes].")
@click.option("--threshold", type=float, default=None, help="threshold: F1 below this value.")
@click.option("--z", type=float, default=None, help="zscore: F1 below mean - z * std [1.0].")
@click.option("--factor", type=float, default=None, help="Repeat factor of weak classes [config, else the factor that adds at most 10 "
                   "points to their share of an epoch, at most 3].")
@click.option("--cap", type=float, default=None,
              help="Factors proportional to 1 - F1 (factor * (1 - F1)), capped at this value.")
@click.option("--scheme", type=click.Choice(["fixed", "proportional"]), default=None,
              help="fixed: every weak class gets --factor; proportional: factor * (1 - F1). "
                   "Default: proportional when --cap is given.")
@click.option("--recipe", default=None, help="A stronger recipe for the weak classes (name or path).")
@click.option("--partners", type=click.IntRange(min=1), default=None, cls=_SchemaHelp,
              help="Confusion partners per chosen class, recorded for --mode pairs "
                   "[config mining.partners, else {mining.partners}].")
@click.option("--force", is_flag=True,
              help="Replace the plan of an interrupted round (then redo it: mine round --redo).")
def plan(run: Path, policy, k, threshold, z, factor, cap, scheme, recipe, partners,
         force) -> None:
    """Write the next round's oversampling plan for RUN and print what it would do."""
    from augmine.rounds.plans import load_run_index, plan_round
    from augmine.rounds.plans import RoundState
    from augmine.rounds.text import format_plan

    state = RoundState.read(run)
    run = state.run.check_writable("mine plan")
    if recipe is not None:
        from augmine.core.runtime import resolve_recipe

        recipe = str(resolve_recipe(recipe))
    index = load_run_index(run)
    round_no, p, src = plan_round(state, index=index, force=force, policy=policy, k=k,
                                  threshold=threshold, z=z, factor=factor, cap=cap, scheme=scheme,
                                  recipe=recipe, partners=partners)
    p.aligned_to(index.class_ids, index.class_names)      # a plan must fit the run's dataset
    click.echo(f"round {round_no} plan from {src['stage']} (policy {p.policy['policy']}, "
               f"{p.policy['scheme']} factors):")
    for line in format_plan(p, index.class_counts("train")):
        click.echo(line)
    if len(p.weak) == p.num_classes:
        click.echo(f"warning: the plan chooses every class ({p.num_classes} of "
                   f"{p.num_classes}); only its factors (x{p.factors.min():.2f} to "
                   f"x{p.factors.max():.2f}) favour some classes over others")
    redo = " --redo" if state.status(round_no) == "interrupted" else ""
    how = f"`augmine mine round {run}{redo}`" if run.has_checkpoint("last") else \
        "your own fit on augmine.oversampled_feed(index, recipe, size, batch_size, PLAN)"
    click.echo(f"wrote {run.plan_path(round_no)}; run it with {how}")


_SELECTION = click.Choice(["val-half", "holdout"])


@command.command("round")
@click.argument("run", type=_RUN)
@click.option("--epochs", type=int, default=None, cls=_SchemaHelp,
              help="Extra epochs [config mining.epochs, else {mining.epochs}].")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help=f"How the round spends its epochs on the chosen classes (shown at factor "
                   f"3): {mode_phrases(MODES)} [config mining.class_weight, else oversample]. "
                   "The recipe mode (a stronger recipe for them) is in `mine compare`; in a "
                   "round give the plan a recipe: `mine plan RUN --recipe R`.")
@click.option("--partners", type=click.IntRange(min=1), default=None, cls=_SchemaHelp,
              help="pairs: confusion partners per chosen class, found on the selection "
                   "images; distill: given, the partners are emphasized too [the plan's, else "
                   "config mining.partners, else {mining.partners}].")
@click.option("--round", "round_no", type=int, default=None, help="Round number [the next one].")
@click.option("--redo", is_flag=True,
              help="Train the latest round (done or interrupted) again from its start.")
@click.option("--no-control", is_flag=True,
              help="Skip the control round (plain sampling, same steps, LR and seeds); the "
                   "effect of the round is then unmeasured.")
@click.option("--selection", type=_SELECTION, default=None,
              help="Where weak classes are chosen: half of val (the other half measures) or "
                   "the held-out slice of train (mining.holdout) [holdout when set, else "
                   "val-half].")
@click.option("--no-progress", is_flag=True,
              help="One line per epoch instead of progress bars (the default when piped).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train each arm and its control this many times (seeds of sampling, "
                   "augmentation and initialisation; the same start); intervals then cover "
                   "seeds and images.")
@click.option("--skip-bad", is_flag=True,
              help="Leave out images that do not decode (each logged) instead of failing.")
def round_(run: Path, epochs, mode, partners, round_no, redo, no_control, selection,
           no_progress, skip_bad, seeds) -> None:
    """Train extra epochs on RUN with the round's plan and a control, report the effect.

    Uses plans/round-N.json (from `augmine mine plan`), or makes it from the config's
    mining settings. An interrupted round (or control) can simply be run again.
    """
    from augmine.rounds.runner import run_round
    from augmine.rounds.plans import RoundState
    from augmine.rounds.text import format_round

    state = RoundState.read(run)
    state.run.check_writable("mine round")
    res = run_round(state, epochs=epochs, mode=mode, round_no=round_no, redo=redo,
                    progress=not no_progress, control=False if no_control else None,
                    selection=selection, skip_bad=skip_bad, partners=partners,
                    echo=click.echo, seeds=seeds)
    for line in format_round(res):
        click.echo(line)
    click.echo(f"report: {state.run.report_file(f'round-{res.round}', 'report.md')}")


@command.command("compare")
@click.argument("run", type=_RUN)
@click.option("--epochs", type=int, default=None, cls=_SchemaHelp,
              help="Epochs per mode [config mining.epochs, else {mining.epochs}].")
@click.option("--recipe", default=None, cls=_SchemaHelp,
              help="Stronger recipe of the recipe mode [config mining.recipe, else "
                   "mining.compare_recipe, else {mining.compare_recipe}].")
@click.option("--mode", "modes", multiple=True, type=click.Choice(COMPARE_MODES),
              help=f"Modes to compare (repeatable) [all]: {mode_phrases()}.")
@click.option("--partners", type=click.IntRange(min=1), default=None, cls=_SchemaHelp,
              help="pairs: confusion partners per chosen class [config mining.partners, else "
                   "{mining.partners}].")
@click.option("--selection", type=_SELECTION, default=None, help="As for `mine round`.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train each arm and its control this many times (seeds of sampling, "
                   "augmentation and initialisation; the same start); intervals then cover "
                   "seeds and images.")
@click.option("--no-progress", is_flag=True, help="One line per epoch instead of progress bars.")
def compare(run: Path, epochs, recipe, modes, partners, selection, no_progress, seeds) -> None:
    """Oversample, class-weight, stronger-recipe and pairs modes side by side from RUN's
    checkpoint.

    Each mode and a control train from the same start with the same plan, steps, LR and
    seeds, in branches beside the run (the run itself is unchanged); prints each mode's
    effect net of control.
    """
    from augmine.rounds.compare import compare_modes
    from augmine.rounds.text import format_compare

    res = compare_modes(run, epochs=epochs, modes=tuple(modes) or COMPARE_MODES,
                        strong_recipe=recipe, progress=not no_progress, selection=selection,
                        partners=partners, echo=click.echo, seeds=seeds)
    for line in format_compare(res):
        click.echo(line)
    click.echo(f"branches: {res['group']}")


def _modes(ctx, param, value):
    if not value:
        return None
    from augmine.rounds.arms import arm
    from augmine.core.errors import AugmineError

    modes = tuple(m.strip() for m in value.split(",") if m.strip())
    try:
        for m in modes:
            arm(m)
    except AugmineError as exc:
        raise click.BadParameter(str(exc)) from None
    return modes


@command.command("auto")
@click.argument("run", type=_RUN)
@click.option("--modes", callback=_modes, default=None,
              help="Modes to try, comma-separated [the cheapest first: "
                   "docs/mining.md].")
@click.option("--epochs", type=int, default=None, cls=_SchemaHelp,
              help="Epochs per mode [config mining.epochs, else {mining.epochs}].")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train each mode and the control this many times (as for `mine compare`).")
@click.option("--selection", type=_SELECTION, default=None, help="As for `mine round`.")
@click.option("--no-progress", is_flag=True, help="One line per epoch instead of progress bars.")
def auto(run: Path, modes, epochs, seeds, selection, no_progress) -> None:
    """The next round of RUN, chosen for you: tries the modes from the checkpoint, keeps the
    best one that helps on the selection images (or none) and reports what you got on the
    measurement images. Run it again to resume."""
    from augmine.rounds.compare import auto_round, format_auto
    from augmine.rounds.plans import RoundState

    state = RoundState.read(run)
    state.run.check_writable("mine auto")
    res = auto_round(state, modes=modes, epochs=epochs, seeds=seeds, selection=selection,
                     progress=not no_progress, echo=click.echo)
    for line in format_auto(res):
        click.echo(line)
    stage = f"round-{res['round']}"
    click.echo(f"report: {state.run.report_file(stage, 'report.md')}")


@command.command("history")
@click.argument("run", type=_RUN)
@click.option("--class", "classes", multiple=True,
              help="Class to follow (name or id; repeatable). Default: the rounds' chosen classes.")
def history_(run: Path, classes) -> None:
    """F1 of chosen classes and overall accuracy across the phases and rounds of RUN."""
    from augmine.analysis.reports import history

    h = history(RunDir.of(run).check(), list(classes) or None)
    names = h["classes"]
    w = max([5, *(len(n) for n in names)])           # whole class names, aligned
    head = f"{'stage':<10} {'size':>5} {'accuracy':>9} {'macro F1':>9}"
    click.echo(head + "".join(f" {n:>{w}}" for n in names))
    for r in h["rows"]:
        size = "-" if r["size"] is None else str(r["size"])
        click.echo(f"{r['stage']:<10} {size:>5} {r['accuracy']:>9.1%} {r['macro_f1']:>9.3f}"
                   + "".join(f" {'-' if r['f1'][n] is None else format(r['f1'][n], '.3f'):>{w}}"
                             for n in names))


@command.command("suspects")
@click.argument("run", type=_RUN)
@click.option("--per-class", default=10, show_default=True, help="Images listed per class.")
@click.option("--class", "classes", multiple=True,
              help="Class to check (name or id; repeatable). Default: the latest plan's classes.")
@click.option("--in-sample", is_flag=True,
              help="Score the training images instead (the model has fit them: weaker evidence).")
@click.option("--skip-bad", is_flag=True,
              help="Leave out images that do not decode (each logged) instead of failing.")
def suspects(run: Path, per_class: int, classes, in_sample: bool, skip_bad: bool) -> None:
    """Images of the weak classes the model believes least (possible label errors), scored
    out of sample: the held-out slice of train when the run has one, else val."""
    from augmine.rounds.plans import RoundState
    from augmine.rounds.suspects import find_suspects

    state = RoundState.read(run)
    state.run.check_writable("mine suspects")
    out, rows, note = find_suspects(state, per_class=per_class, classes=list(classes) or None,
                                    in_sample=in_sample, skip_bad=skip_bad)
    if rows:
        click.echo(f"scored on {rows[0]['split']} images, {rows[0]['scored']}")
    if note:
        click.echo(note)
    for r in rows:
        click.echo(f"{r['name'][:24]:<24} p(own)={r['self_confidence']:.3f}  looks like "
                   f"{r['predicted_name'][:24]:<24} {r['path']}")
    click.echo(f"wrote {out}")
