"""Wall time of one ``recipe compare`` with ``--jobs 1`` against ``--jobs N``: same arms,
seeds, config, budget and data, each into a fresh folder, interleaved (1, N, 1, N, ...) so
that the machine's drift hits both alike.

Each side is the CLI as a user runs it (``augmine.experiments.compare_jobs.cli_argv``: this
Python running ``augmine`` in a child process), timed from start to the printed table:
start-up, every run's training and predictions, the scoring. The tables the two sides print should agree up to the float
noise of another thread count (docs/recipes.md, ``--jobs``); the script prints both
sides' top-1 per arm to show it.

    python benchmarks/compare_jobs.py                         # 3 arms x 3 seeds, cpu-20, 2 epochs at 16 px
    python benchmarks/compare_jobs.py --epochs 0 --size 0     # cpu-20's own phases (about an hour a side on 2 cores)

Defaults: ``none tiny-imagenet-14@0.5 trivial-augment@0.5 --seeds 3 --config cpu-20`` on
``../shared/data/tiny-imagenet-20`` (the 3-seed comparison of docs/recipes.md) on a short
budget (``--epochs 2 --size 16``), so that a side takes minutes. Not a test: the numbers
depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from augmine.experiments.compare_jobs import cli_argv

REPO = Path(__file__).resolve().parents[1]
ARMS = ("none", "tiny-imagenet-14@0.5", "trivial-augment@0.5")


def compare_once(args, jobs: int, out: Path) -> float:
    """Run the comparison into ``out`` with ``--jobs jobs``; its wall seconds."""
    argv = cli_argv("recipe", "compare", *args.arms, "--data", args.data, "--config",
                    args.config, "--seeds", args.seeds, "--jobs", jobs, "--out", out,
                    "--no-progress")
    if args.epochs:
        argv += ["--epochs", str(args.epochs)]
    if args.size:
        argv += ["--size", str(args.size)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NO_ALBUMENTATIONS_UPDATE": "1"}
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"--jobs {jobs} failed ({done.returncode}):\n{done.stdout[-2000:]}"
                 f"{done.stderr[-2000:]}")
    return took


def final_top1(out: Path) -> dict[str, float]:
    """``{arm: final top-1 %}`` from the comparison's ``results.json``."""
    results = json.loads((out / "results.json").read_text())
    means = results["metrics"]["final_top1"]["mean"]
    return {arm["name"]: 100 * float(m) for arm, m in zip(results["arms"], means)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arms", nargs="*", default=list(ARMS))
    parser.add_argument("--data", type=Path,
                        default=REPO.parent / "shared" / "data" / "tiny-imagenet-20")
    parser.add_argument("--config", default="cpu-20")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="one phase of this many "
                        "epochs (0: the config's phases)")
    parser.add_argument("--size", type=int, default=16, help="that phase's size in px "
                        "(0: the config's last)")
    parser.add_argument("--jobs", type=int, default=2, help="the side compared with --jobs 1")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if not (args.data / "train").is_dir():
        sys.exit(f"{args.data}: no train/ folder; pass --data DATASET (Tiny-ImageNet layout)")

    runs = len(args.arms) * args.seeds
    epochs = args.epochs or "the config's"
    size = args.size or "its last phase's"
    budget = "the config's phases" if not (args.epochs or args.size) else \
        f"one phase of {epochs} epochs at {size} px"
    print(f"recipe compare {' '.join(args.arms)} --seeds {args.seeds} --config {args.config}"
          f" ({runs} runs, {budget}) on {args.data}")
    print(f"machine: {os.cpu_count()} CPU cores, {platform.machine()}, Python "
          f"{platform.python_version()}, KERAS_BACKEND={os.environ.get('KERAS_BACKEND', 'tensorflow')}")
    walls: dict[int, list[float]] = {1: [], args.jobs: []}
    top1: dict[int, dict] = {}
    root = Path(tempfile.mkdtemp(prefix="compare-jobs-"))
    try:
        for repeat in range(args.repeats):
            for jobs in (1, args.jobs):
                out = root / f"jobs{jobs}-r{repeat}"
                took = compare_once(args, jobs, out)
                walls[jobs].append(took)
                top1[jobs] = final_top1(out)
                print(f"repeat {repeat + 1}: --jobs {jobs}: {took:7.1f} s "
                      f"({took / runs:.1f} s a run)", flush=True)
                shutil.rmtree(out)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    one, many = statistics.median(walls[1]), statistics.median(walls[args.jobs])
    print(f"\nmedian wall time over {args.repeats} repeat(s): --jobs 1 {one:.1f} s, "
          f"--jobs {args.jobs} {many:.1f} s; ratio (--jobs {args.jobs} / --jobs 1) "
          f"{many / one:.2f}")
    print("final top-1 % per arm (mean over seeds), last repeat:")
    for arm in top1[1]:
        print(f"  {arm:28s} --jobs 1 {top1[1][arm]:5.1f}   --jobs {args.jobs} "
              f"{top1[args.jobs][arm]:5.1f}")


if __name__ == "__main__":
    main()
