"""Helpers for tests that start a server process: wait until it answers, stop it."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def wait_until_healthy(proc: subprocess.Popen, url: str, log: Path, timeout: float = 60) -> None:
    """Poll ``url`` (a Streamlit ``/_stcore/health`` address) until it answers ``ok``; fail
    the test with the end of ``log`` when ``proc`` exits or ``timeout`` seconds pass."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200 and r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"server did not serve {url}: " + Path(log).read_text()[-2000:])
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    """Terminate ``proc``, killing it when it does not exit within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
