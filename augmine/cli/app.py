"""``augmine app``: start the Streamlit app (augmentation browser and confusion explorer)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from ..app import APP_FILE
from ..errors import AugmineError


def streamlit_command(run_dir: str | None, data: str | None, port: int | None,
                      headless: bool, address: str | None = None) -> list[str]:
    """The ``streamlit run`` argument list that starts the app (app options after ``--``)."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP_FILE),
           "--server.headless", "true" if headless else "false",
           "--browser.gatherUsageStats", "false"]
    if port:
        cmd += ["--server.port", str(port)]
    if address:
        cmd += ["--server.address", address]
    cmd.append("--")
    if run_dir:
        cmd.append(str(Path(run_dir).resolve()))
    if data:
        cmd += ["--data", str(Path(data).resolve())]
    return cmd


@click.command("app")
@click.argument("run_dir", required=False, type=click.Path())
@click.option("--data", type=click.Path(), default=None,
              help="Dataset folder to browse (default: the run's dataset, else the generated one).")
@click.option("--port", type=int, default=None,
              help="Port to serve on (default: Streamlit's 8501).")
@click.option("--address", default=None, help="Address to listen on, e.g. 127.0.0.1.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser (headless server).")
def command(run_dir, data, port, address, no_browser):
    """Open the app on RUN_DIR (optional): preview recipes, explore confusions and F1."""
    if not APP_FILE.exists():
        raise AugmineError(f"{APP_FILE} is missing from the installed package; reinstall "
                           "augmine (pip install --force-reinstall 'augmine[app]')")
    if run_dir and not Path(run_dir).is_dir():
        raise AugmineError(f"run folder {run_dir} does not exist or is not a folder; give the "
                           "folder `augmine train` wrote, or leave it out to only browse recipes")
    if data and not Path(data).is_dir():
        raise AugmineError(f"--data {data} is not a folder; give the dataset folder that holds "
                           "train/ and val/")
    try:
        import streamlit  # noqa: F401  (only to fail early with a clear message)
    except ImportError:
        raise AugmineError("streamlit is not installed; install it with "
                           "pip install 'augmine[app]'") from None
    cmd = streamlit_command(run_dir, data, port, headless=no_browser, address=address)
    click.echo("starting: " + " ".join(cmd[2:]), err=True)
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    if os.name == "posix":
        # become the streamlit process: Ctrl-C and kill reach the server, no orphan is left
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(cmd[0], cmd, env)
    try:  # pragma: no cover - Windows has no exec that keeps the process
        rc = subprocess.call(cmd, env=env)
    except KeyboardInterrupt:  # pragma: no cover
        rc = 0
    sys.exit(rc)  # pragma: no cover
