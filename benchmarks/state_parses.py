"""How often one command reads and parses a run's ``state.json``.

Trains a small run (the test suite's tiny DenseNet, one phase of ``--epochs`` epochs at 16 px)
and then, each in this process with the state cache emptied first (as in a new process),
runs ``augmine train`` (the new run), ``augmine train --resume --epochs N+1`` (one epoch
more), ``augmine mine round --epochs 1`` (with its control) and ``augmine evaluate``. Per
command it prints, per state file, the calls of ``RunDir.read_state`` (before ``RunState``
each call parsed the file, and a round's start snapshot was parsed once more) and the
parses (``augmine.runs.state.parse_state``).

    python benchmarks/state_parses.py --data ../shared/data/tiny-imagenet-sample
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import yaml
from click.testing import CliRunner

import augmine.runs.state as run_state
from augmine.cli import cli
from augmine.runs.rundir import RunDir

TINY = {"name": "tiny", "model": {"width": 16, "growth_rate": 12, "blocks": 3,
                                  "layers_per_block": 1}, "batch_size": 32,
        "optimizer": {"name": "adam"}, "seed": 0, "workers": 0, "mixed_precision": "false",
        "strategy": "default", "schedule": {"min_lr": 0.002, "max_lr": 0.01, "half_cycle": 60},
        "mining": {"policy": "bottom-k", "k": 2, "factor": 3}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="dataset folder (Tiny-ImageNet layout)")
    ap.add_argument("--epochs", type=int, default=2, help="the run's epochs (default 2)")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="augmine-state-parses-"))
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "phases": [
        {"size": 16, "epochs": args.epochs, "recipe": "none"}]}))
    run = folder / "run"

    reads, parses = Counter(), Counter()
    read, parse = RunDir.read_state, run_state.parse_state

    def counted_read(self):
        reads[self.state_path.relative_to(folder)] += 1
        return read(self)

    def counted_parse(data, path, fix):
        parses[path.relative_to(folder)] += 1
        return parse(data, path, fix)

    RunDir.read_state, run_state.parse_state = counted_read, counted_parse
    commands = [["train", config, "--data", args.data, "--run-dir", run],
                ["train", "--run-dir", run, "--resume", "--epochs", args.epochs + 1],
                ["mine", "round", run, "--epochs", 1],
                ["evaluate", run]]
    for command in commands:
        run_state.forget_cached_states()
        reads.clear()
        parses.clear()
        res = CliRunner().invoke(cli, [str(a) for a in command] + (
            ["--no-progress"] if command[0] != "evaluate" else []))
        if res.exit_code != 0:
            raise SystemExit(res.output)
        name = " ".join({str(run): "RUN", str(config): "CONFIG", args.data: "DATA"}.get(
            str(a), str(a)) for a in command)
        print(f"augmine {name}: read_state calls {sum(reads.values())} "
              f"({', '.join(f'{p}: {n}' for p, n in reads.items()) or 'none'}); "
              f"parses {sum(parses.values())} "
              f"({', '.join(f'{p}: {n}' for p, n in parses.items()) or 'none'})")


if __name__ == "__main__":
    main()
