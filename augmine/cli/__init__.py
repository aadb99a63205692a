"""The ``augmine`` command: a click group whose subcommands are thin layers over the library.

Command modules import only click at import time; TensorFlow, albumentations and the
like are imported inside the commands, so ``augmine --help`` answers at once.
Every :class:`~augmine.errors.AugmineError` is printed as one ``Error:`` line (exit status 1).
"""

from __future__ import annotations

import errno
import importlib
import logging

import click

from .. import __version__
from ..errors import AugmineError

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


# the environment refused a write: one line, not a traceback
_WRITE_ERRORS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)


@click.group(cls=AugmineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="augmine")
@click.option("-v", "--verbose", is_flag=True, help="Show TensorFlow's start-up log and info lines.")
def cli(verbose: bool) -> None:
    """augmine: data-centric augmentation and hard-class mining for small-image classifiers."""
    from ..runtime import set_verbose

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
