"""The ``augmine`` command lines printed for the user to run next ("continue with: ...",
"open the app: ...", "next: ..."): built here, so each one runs as printed.

A virtual environment that is not activated has ``augmine`` off ``PATH``; the printed
command then starts with the path of this installation's ``augmine`` script instead.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import sysconfig
from pathlib import Path

NAME = "augmine"


def _installed_script() -> Path | None:
    """This installation's ``augmine`` script: the one running, else the one beside this
    interpreter (its environment's scripts folder); None when there is none."""
    running = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    candidates = [running] if running is not None and running.name == NAME else []
    candidates += [Path(sysconfig.get_path("scripts")) / NAME, Path(sys.executable).parent / NAME]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path.absolute()
    return None


def program() -> str:
    """How a shell starts this installation's augmine: ``augmine`` when that name on ``PATH``
    is it (or no script of it is found), else the absolute path of its script."""
    script = _installed_script()
    found = shutil.which(NAME)
    if script is None or (found is not None and os.path.samefile(found, script)):
        return NAME
    return str(script)


def command_line(*args) -> str:
    """``augmine ARGS`` as a shell command line that works as printed: :func:`program`
    first, each argument (paths included) quoted where the shell needs it."""
    return shlex.join([program(), *(str(a) for a in args)])
