"""``augmine demo``: the whole loop on the embedded generated dataset (or ``--data``)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(path_type=Path),
              help="Run folder; running again resumes it or reprints the summary.")
@click.option("--data", default=None, type=click.Path(path_type=Path),
              help="Dataset folder (default: the embedded generated dataset).")
@click.option("--config", default=None,
              help="Training config, a file or a built-in name (default: the built-in "
                   "cpu-small); a smaller one makes a quicker demo.")
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Epochs per phase (default: the config's).")
@click.option("--round-epochs", default=None, type=click.IntRange(min=1),
              help="Epochs of the mining round (default: the config's mining.epochs).")
@click.option("--skip-bad", is_flag=True,
              help="Leave out images that do not decode (each logged) instead of failing.")
def command(out: Path, data: Path | None, config: str | None, epochs: int | None,
            round_epochs: int | None, skip_bad: bool) -> None:
    """Generate data, inspect it, train through 16/32/64 px, run a mining round, summarise.

    Takes a few minutes on a 2-core CPU; no download.
    """
    from augmine.experiments.demo import run_demo
    from augmine.runs.rundir import RunDir

    RunDir(out).check_writable("demo")

    run_demo(out, data=data, epochs=epochs, round_epochs=round_epochs, echo=click.echo,
             skip_bad=skip_bad, config=config)
