"""The ``augmine`` command: a click group whose subcommands are thin layers over the library.

Command modules import only click at import time; TensorFlow, albumentations and the
like are imported inside the commands, so ``augmine --help`` answers at once.
Every :class:`~augmine.core.errors.AugmineError` is printed as one ``Error:`` line (exit status 1).
"""

from __future__ import annotations

import errno
import importlib
import logging
import sys

import click

from augmine import __version__
from augmine.core.runtime import command_line
from augmine.core.errors import AugmineError

# Each module defines one click command or group named ``command`` (or a list ``commands``).
COMMAND_MODULES = (
    "augmine.cli.recipe",
    "augmine.cli.inspect",
    "augmine.cli.data",
    "augmine.cli.app",
    "augmine.cli.mine",
    "augmine.cli.train",
    "augmine.cli.demo",
)


class _EchoHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"{record.levelname.lower()}: {record.getMessage()}", err=True)


class AugmineGroup(click.Group):
    """A click group that turns augmine's bad-input errors into one-line messages."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            hint = continue_command(sys.argv[1:])
            click.echo("\ninterrupted" + (f"; continue with: {hint}" if hint else ""),
                       err=True)
            raise click.exceptions.Exit(130) from None
        except AugmineError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            if exc.errno not in _WRITE_ERRORS:
                raise
            where = exc.filename or "a file"
            raise click.ClickException(
                f"cannot write {where}: {exc.strerror}; free space or make its folder "
                "writable (or copy the run folder to a writable place and give the copy), "
                "then run the same command again") from None


# commands that continue where they stopped when run again (train needs --resume)
_RESUMABLE = (("train",), ("demo",), ("mine", "round"), ("mine", "compare"),
              ("recipe", "compare"), ("recipe", "tune"))


def continue_command(argv: list[str]) -> str | None:
    """The command that continues an interrupted ``augmine ARGV`` (None when the command
    does not resume): ``train`` becomes ``train --run-dir RUN --resume``, the others are
    run again as they were."""
    words = [a for a in argv if not a.startswith("-")][:2]
    if not any(tuple(words[:len(r)]) == r for r in _RESUMABLE):
        return None
    if words[0] == "train" and "--resume" not in argv:
        run = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--run-dir"),
                   next((a.split("=", 1)[1] for a in argv if a.startswith("--run-dir=")),
                        None))
        if run is None:
            return None
        keep = [a for a in ("--no-progress", "--skip-bad") if a in argv]
        return command_line("train", "--run-dir", run, "--resume", *keep)
    return command_line(*argv)


# the environment refused a write: one line, not a traceback
_WRITE_ERRORS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)


@click.group(cls=AugmineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="augmine")
@click.option("-v", "--verbose", is_flag=True, help="Show TensorFlow's start-up log and info lines.")
def cli(verbose: bool) -> None:
    """augmine: data-centric augmentation and hard-class mining for small-image classifiers."""
    from augmine.core.runtime import set_verbose

    logger = logging.getLogger("augmine")
    if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
        logger.addHandler(_EchoHandler())
        logger.propagate = False
    set_verbose(verbose)


for _name in COMMAND_MODULES:
    _module = importlib.import_module(_name)
    for _command in getattr(_module, "commands", None) or [_module.command]:
        cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="augmine")
