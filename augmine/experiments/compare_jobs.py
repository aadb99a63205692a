"""The runs of a comparison (arm x training seed): which one ``--arm NAME[@SEED]`` names,
what they cost before they train, ``--jobs N`` (N concurrent ``augmine recipe compare
... --arm`` processes on this machine) and ``--ray ADDRESS`` (one Ray task each).

Cost: a run's training time is extrapolated from one measured epoch (the first epoch of a
run in the comparison folder, start-up included) over the config's phases, each epoch
scaled by its pixels per image ((size / first size) ** 2); a finished run's own training
seconds replace the extrapolation once there is one. Rough by design: it says which it used.

Processes: each child gets one GPU (``CUDA_VISIBLE_DEVICES``, round-robin over the GPUs
this process sees: ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi -L``); without a
GPU each child gets ``cores // N`` CPU threads (at least 1: ``OMP_NUM_THREADS``,
``TF_NUM_INTRAOP_THREADS``, ``TF_NUM_INTEROP_THREADS``; values already set are kept). Each
child writes its output to ``OUT/logs/<run>.log``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from augmine.core.errors import AugmineError
from augmine.experiments.compare_results import ComparisonDir

THREAD_VARIABLES = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def parse_arm(text: str, arm_names: Sequence[str], seeds: int) -> tuple[str, int]:
    """``"light"`` -> ``("light", 0)``, ``"light@2"`` -> ``("light", 2)``; one line naming
    the arms and seeds otherwise."""
    name, at, seed = str(text).rpartition("@")
    if not at:
        name, seed = str(text), "0"
    if name not in arm_names:
        raise AugmineError(f"--arm {text!r}: no such arm; this comparison has "
                           f"{', '.join(arm_names)} (add @SEED for another seed)")
    if not seed.isdigit() or int(seed) >= int(seeds):
        raise AugmineError(f"--arm {text!r}: the seed must be 0..{int(seeds) - 1} "
                           f"(--seeds {int(seeds)}); e.g. {name}@0")
    return name, int(seed)


def run_seconds(phases: Sequence[dict], first_epoch_seconds: float) -> float:
    """A whole run's training seconds from its first epoch's: every epoch of every phase
    scaled by its pixels per image against the first phase's."""
    size0 = float(phases[0]["size"])
    return float(first_epoch_seconds) * sum(int(p["epochs"]) * (float(p["size"]) / size0) ** 2
                                            for p in phases)


def measured_run_seconds(folder: ComparisonDir, runs: Sequence[str],
                         phases: Sequence[dict]) -> tuple[float, str] | None:
    """``(seconds of one run, how it was measured)`` from the folder's timing files: the
    mean of finished runs' training seconds, else extrapolated from a run's first epoch;
    None when no epoch was measured."""
    from augmine.runs.rundir import RunDir

    total = sum(int(p["epochs"]) for p in phases)
    finished, first = [], None
    for name in runs:
        rows = folder.read_timing(name) or {}
        if not rows:
            continue
        if len(rows) >= total and RunDir(folder.run_dir(name)).has_state():
            finished.append(sum(r["seconds"] for r in rows.values()))
        elif first is None:
            first = (name, rows[min(rows, key=int)]["seconds"])
    if finished:
        return (sum(finished) / len(finished),
                f"the training time of {len(finished)} finished run(s) here")
    if first is not None:
        return (run_seconds(phases, first[1]),
                f"the first epoch of {first[0]} ({first[1]:.0f} s, start-up included), "
                "scaled over the phases by pixels per image")
    return None


def format_duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{seconds:.0f} s" if seconds < 90 else \
        f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def cost_lines(folder: ComparisonDir, runs: Sequence[str], todo: Sequence[str],
               phases: Sequence[dict], jobs: int = 1,
               measured: Sequence[str] | None = None) -> list[str]:
    """What the comparison will do: the runs, what is left, the estimate (from the timing
    of the ``measured`` runs, default ``runs``), where it goes."""
    epochs = sum(int(p["epochs"]) for p in phases)
    shape = ", ".join(f"{p['epochs']} at {p['size']} px" for p in phases)
    lines = [f"{len(runs)} run(s) of {epochs} epochs ({shape}) in {folder.path}/: "
             f"{len(runs) - len(todo)} trained, {len(todo)} to train or resume"]
    if todo:
        got = measured_run_seconds(folder, measured or runs, phases)
        if got is None:
            lines.append("estimated time: no epoch measured on this machine yet; the "
                         "estimate prints after the first epoch of the first run")
        else:
            each, how = got
            par = f" (about {format_duration(len(todo) * each / jobs)} with --jobs {jobs}, " \
                  "if the machine has room for them)" if jobs > 1 else ""
            lines.append(f"estimated time: about {format_duration(each)} a run, "
                         f"{format_duration(len(todo) * each)} for the {len(todo)} left one "
                         f"after another{par}; from {how}")
    return lines


# --------------------------------------------------------------------------- processes

def gpu_ids() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else those
    ``nvidia-smi -L`` lists (none when it is missing)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines())
            if line.startswith("GPU ")]


def child_env(slot: int, jobs: int, gpus: Sequence[str], cores: int | None = None) -> dict:
    """The environment of child ``slot`` of ``jobs``: one GPU round-robin, or an equal
    share of the CPU cores as threads (see the module docstring)."""
    env = dict(os.environ)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    else:
        threads = str(max(1, (cores or os.cpu_count() or 1) // max(1, int(jobs))))
        for name in THREAD_VARIABLES:
            env.setdefault(name, threads)
    return env


def run_children(commands: dict[str, list[str]], folder: ComparisonDir, jobs: int,
                 echo: Callable[[str], None]) -> None:
    """Run ``{run name: argv}`` as at most ``jobs`` processes at once, each writing to its
    log; one line per start and end; a one-line error naming the failed runs' logs."""
    gpus = gpu_ids()
    slots = list(range(int(jobs)))

    def one(item: tuple[str, list[str]]) -> tuple[str, int]:
        name, argv = item
        slot = slots.pop(0)
        log = folder.log_path(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        where = f"GPU {gpus[slot % len(gpus)]}" if gpus else "CPU"
        echo(f"{name}: started on {where} (log {log})")
        try:
            with open(log, "ab") as fh:
                code = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT,
                                      env=child_env(slot, jobs, gpus)).returncode
        finally:
            slots.append(slot)
        echo(f"{name}: {'done' if code == 0 else f'failed (exit code {code})'}")
        return name, code

    with ThreadPoolExecutor(max_workers=int(jobs)) as pool:
        results = list(pool.map(one, commands.items()))
    failed = [name for name, code in results if code != 0]
    if failed:
        raise AugmineError(f"{len(failed)} run(s) failed: " + ", ".join(
            f"{n} (see {folder.log_path(n)})" for n in failed) + "; fix the cause and run "
            "the comparison again (finished runs are kept)")


def run_on_ray(commands: dict[str, list[str]], folder: ComparisonDir, address: str,
               echo: Callable[[str], None]) -> None:
    """Run ``{run name: argv}`` as Ray tasks on the cluster at ``address`` (``auto``, or
    ``HOST:PORT``; an already connected Ray is used as it is): one CPU each, one GPU each
    when the cluster has GPUs; each task runs the child command with its node's Python,
    writing to the run's log, so ``--out`` must be a folder every node shares."""
    try:
        import ray
    except ImportError:
        raise AugmineError("--ray needs Ray; install it with pip install 'augmine[ray]'") \
            from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0

        @ray.remote(num_cpus=1, num_gpus=gpus)
        def train(args: list[str], log: str) -> int:
            import subprocess as sp
            import sys as node_sys

            Path(log).parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as fh:
                return sp.run([node_sys.executable, *args], stdout=fh,
                              stderr=sp.STDOUT).returncode

        refs = {name: train.remote(argv[1:], str(folder.log_path(name)))
                for name, argv in commands.items()}
        echo(f"{len(refs)} run(s) sent to Ray at {address} (logs in {folder.path}/logs/)")
        failed = []
        for name, ref in refs.items():
            code = ray.get(ref)
            echo(f"{name}: {'done' if code == 0 else f'failed (exit code {code})'}")
            failed += [name] if code != 0 else []
    finally:
        if started:
            ray.shutdown()
    if failed:
        raise AugmineError(f"{len(failed)} run(s) failed on Ray: " + ", ".join(
            f"{n} (see {folder.log_path(n)})" for n in failed) + "; fix the cause and run "
            "the comparison again (finished runs are kept)")


def cli_argv(*args) -> list[str]:
    """The argv that runs ``augmine ARGS...`` with this Python (whatever ``augmine`` is on
    ``PATH``), as a child process."""
    return [sys.executable, "-c", "from augmine.cli import cli; cli(prog_name='augmine')",
            *map(str, args)]


def child_command(recipes: Sequence[str], data, config, out, epochs, size, strengths,
                  seeds: int, run: str) -> list[str]:
    """The argv of a child process: this Python running the ``recipe compare`` command with
    this comparison's arguments and ``--arm RUN``."""
    argv = cli_argv("recipe", "compare", *recipes, "--data", data, "--config", config,
                    "--out", Path(out), "--seeds", int(seeds), "--arm", run, "--no-progress")
    if epochs is not None:
        argv += ["--epochs", str(epochs)]
    if size is not None:
        argv += ["--size", str(size)]
    if strengths:
        argv += ["--strength", ",".join(f"{s:g}" for s in strengths)]
    return argv


__all__ = ["child_command", "child_env", "cost_lines", "format_duration", "gpu_ids",
           "measured_run_seconds", "parse_arm", "run_children", "run_on_ray", "run_seconds"]
