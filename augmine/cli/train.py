"""``augmine train``, ``augmine evaluate`` and ``augmine lr-find``: thin layers over
:mod:`augmine.train.phases`, :mod:`augmine.train.evaluation` and :mod:`augmine.train.lrfind`."""

from __future__ import annotations

from pathlib import Path

import click


def _data_or_default(data: Path | None) -> Path:
    if data is not None:
        return data
    from augmine.data.synth import ensure_default_dataset

    click.echo("no --data given: using the embedded generated dataset", err=True)
    return ensure_default_dataset(progress=True)


@click.command("train")
@click.argument("config", type=click.Path(path_type=Path), required=False)
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset folder (default: the run's recorded one with --resume, else the "
                   "embedded generated dataset).")
@click.option("--run-dir", type=click.Path(path_type=Path), required=True,
              help="Run folder to create (or to continue with --resume); a folder holding a "
                   "run's checkpoints, reports or history is never started afresh.")
@click.option("--resume", is_flag=True,
              help="Continue the run at its phase, epoch and LR step; a CONFIG or --data "
                   "given must match the run's own (only the last phase's epochs may change).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Epochs of the config's last phase (the other phases as written); with "
                   "--resume, train the run to that many (a finished run trains further).")
@click.option("--rebuild-state", is_flag=True,
              help="Rebuild a lost or damaged state.json from history.csv and "
                   "checkpoints/last.keras (then --resume continues the run); trains nothing.")
@click.option("--no-progress", is_flag=True,
              help="One line per epoch instead of progress bars (the default when piped).")
@click.option("--skip-bad", is_flag=True,
              help="Leave out images that do not decode (each logged) instead of failing; "
                   "the run remembers it, so --resume uses the same images.")
def train(config: Path | None, data: Path | None, run_dir: Path, resume: bool,
          epochs: int | None, rebuild_state: bool, no_progress: bool, skip_bad: bool) -> None:
    """Train the phases of CONFIG (a training config YAML) into --run-dir."""
    from augmine.runs.config import load_config
    from augmine.core.errors import AugmineError
    from augmine.runs.rundir import RunDir
    from augmine.train.phases import plot_run_schedule, train_run

    run = RunDir(run_dir)
    if rebuild_state:
        return _rebuild(run, config, data, resume, epochs, skip_bad, no_progress)
    if config is None and not resume:
        raise AugmineError("give a training config, e.g. `augmine train cpu-small --run-dir "
                           "runs/small` (or --resume an existing run)")
    if not resume:
        config = load_config(config)  # fail on a bad config before touching the dataset
        run.check_new_run()
        data = _data_or_default(data)
    run.check_writable("train --resume" if resume else "train")
    result = train_run(config, data, run_dir, resume=resume, progress=not no_progress,
                       skip_bad=skip_bad, echo=click.echo, epochs=epochs)
    from augmine.runs.factories import best_summary, format_best

    st = result.state
    click.echo(f"run       {result.run_dir}")
    click.echo(f"epochs    {st.epochs_done}/{st.planned_epochs}  (step {st.step})")
    best = best_summary(result.run_dir)
    for line in format_best(best, result.run_dir) if best else ():
        click.echo(line)
    click.echo(f"reports   {', '.join(st.reports)}")
    schedule = plot_run_schedule(result)
    if schedule is not None:
        click.echo(f"schedule  {schedule}")


def _rebuild(run, config, data, resume: bool, epochs, skip_bad: bool, no_progress: bool):
    """``train --rebuild-state``: a new state.json from the run's files, and how to go on."""
    from augmine.core.errors import AugmineError
    from augmine.train.recovery import rebuild_state

    if config is not None or data is not None or resume or epochs is not None:
        raise AugmineError("--rebuild-state takes only --run-dir (and --skip-bad): it rebuilds "
                           f"the run's own state; then continue with `augmine train --run-dir "
                           f"{run} --resume`")
    run.check_writable("train --rebuild-state")
    st = rebuild_state(run, skip_bad=skip_bad, progress=not no_progress)
    click.echo(f"rebuilt   {run.state_path}: {st.epochs_done} of {st.planned_epochs} "
               f"epochs done (phase {st.phase}, step {st.step}), from history.csv and "
               "checkpoints/last.keras")
    from augmine.core.runtime import command_line

    click.echo(f"continue  {command_line('train', '--run-dir', run, '--resume')}")


@click.command("evaluate")
@click.argument("run_or_checkpoint", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset folder (default: the run's recorded one).")
@click.option("--checkpoint", "which", type=click.Choice(["best", "last"]), default="best",
              show_default=True, help="Which checkpoint of a run folder.")
@click.option("--size", type=int, default=None, help="Image size (default: the last phase's).")
@click.option("--batch-size", type=int, default=None)
@click.option("--skip-bad", is_flag=True,
              help="Leave out images that do not decode (each logged) instead of failing.")
def evaluate(run_or_checkpoint: Path, data: Path | None, which: str, size: int | None,
             batch_size: int | None, skip_bad: bool) -> None:
    """Top-1/top-5 accuracy and loss of a run (or a .keras file) on the validation split.

    A run folder defaults to its last phase's best checkpoint at the last phase's size."""
    from augmine.train.evaluation import evaluate_checkpoint

    r = evaluate_checkpoint(run_or_checkpoint, data, size=size, batch_size=batch_size,
                            which=which, skip_bad=skip_bad)
    click.echo(f"checkpoint  {r['checkpoint']}")
    click.echo(f"data        {r['data']}  ({r['num_samples']} val images at {r['size']} px)")
    click.echo(f"top-1       {r['top1']:.2%}")
    click.echo(f"top-5       {r['top5']:.2%}")
    click.echo(f"loss        {r['loss']:.4f}")


@click.command("lr-find")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset folder (default: the embedded generated dataset).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("lr-find"),
              show_default=True, help="Folder for lr_find.png and lr_find.json.")
@click.option("--phase", type=int, default=1, show_default=True,
              help="Which phase's size and recipe to test at.")
@click.option("--steps", type=int, default=200, show_default=True)
@click.option("--start-lr", type=float, default=1e-5, show_default=True)
@click.option("--end-lr", type=float, default=1.0, show_default=True)
@click.option("--no-progress", is_flag=True, help="Print no per-step progress on stderr.")
def lr_find(config: Path, data: Path | None, out: Path, phase: int, steps: int,
            start_lr: float, end_lr: float, no_progress: bool) -> None:
    """LR range test: sweep the rate exponentially, plot loss vs LR, suggest min/max."""
    from augmine.runs.config import load_config
    from augmine.train.lrfind import lr_find as run_lr_find

    load_config(config)
    r = run_lr_find(config, _data_or_default(data), out, phase=phase, steps=steps,
                    start_lr=start_lr, end_lr=end_lr, progress=not no_progress)
    click.echo(f"steps       {r['steps']}")
    click.echo(f"suggested   min_lr {r['min_lr']:.3g}   max_lr {r['max_lr']:.3g}")
    click.echo(f"            (steepest fall at {r['steepest_lr']:.3g}, lowest loss at "
               f"{r['lr_at_min_loss']:.3g})")
    if r.get("warning"):
        click.echo(f"warning     {r['warning']}")
    click.echo(f"plot        {r['png']}")


commands = [train, evaluate, lr_find]
