"""``augmine app``: start the Streamlit app (augmentation browser and confusion explorer)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from augmine.app import APP_FILE
from augmine.core.errors import AugmineError

DEFAULT_ADDRESS = "127.0.0.1"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
INSTALL_HINT = ("pip install 'augmine[app]' (from a source checkout: "
                "pip install -e '.[app]')")


def should_run_headless(no_browser: bool) -> bool:
    """True when Streamlit must not open a browser nor prompt: ``--no-browser``, stdin not a
    terminal (background, nohup, service manager, CI) or no display (Linux without
    ``DISPLAY``/``WAYLAND_DISPLAY``). A non-headless first start asks for an e-mail on the
    terminal and would wait there forever without one."""
    if no_browser:
        return True
    try:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed stdin
        interactive = False
    if not interactive:
        return True
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return False


def streamlit_command(run_dir: str | None, data: str | None, port: int | None,
                      headless: bool, address: str | None = DEFAULT_ADDRESS) -> list[str]:
    """The ``streamlit run`` argument list that starts the app (app options after ``--``).

    ``address`` None leaves Streamlit's own default (all interfaces)."""
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
@click.option("--address", default=DEFAULT_ADDRESS, show_default=True,
              help="Address to listen on. The default serves this machine only; "
                   "0.0.0.0 shares the app (and the folders given) with the network.")
@click.option("--no-browser", is_flag=True,
              help="Do not open a browser (headless server; automatic without a terminal "
                   "or display).")
def command(run_dir, data, port, address, no_browser):
    """Open the app on RUN_DIR (optional): preview recipes, explore confusions and F1.

    The app opens only RUN_DIR, the --data folder, the run's recorded dataset and the
    generated default dataset: its sidebar offers no other folder.
    """
    if not APP_FILE.exists():
        raise AugmineError(f"{APP_FILE} is missing from the installed package; reinstall "
                           f"augmine: {INSTALL_HINT}")
    address = address.strip()
    if not address:
        raise AugmineError("--address is empty; give an address such as 127.0.0.1 (this "
                           "machine only) or 0.0.0.0 (every network interface)")
    if run_dir and not Path(run_dir).is_dir():
        raise AugmineError(f"run folder {run_dir} does not exist or is not a folder; give the "
                           "folder `augmine train` wrote, or leave it out to only browse recipes")
    if data and not Path(data).is_dir():
        raise AugmineError(f"--data {data} is not a folder; give the dataset folder that holds "
                           "train/ and val/")
    try:
        import streamlit  # noqa: F401  (only to fail early with a clear message)
    except ImportError:
        raise AugmineError(f"streamlit is not installed; install it with {INSTALL_HINT}"
                           ) from None
    cmd = streamlit_command(run_dir, data, port, headless=should_run_headless(no_browser),
                            address=address)
    click.echo("starting: " + " ".join(cmd[2:]), err=True)
    if address not in LOOPBACK:
        click.echo(f"warning: listening on {address}: anyone who can reach port "
                   f"{port or 8501} can use the app and see the images of the folders it "
                   "was given; leave out --address to serve this machine only", err=True)
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
