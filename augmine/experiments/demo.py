"""``augmine demo``: the whole loop on one dataset, start to finish, in a few minutes on a CPU.

1. the dataset: the embedded generated one (made once, cached) or ``--data``;
2. inspection of its val set (``<out>/inspection/``: JSON, CSV, histograms);
3. a small DenseNet trained through the 16, 32 and 64 px phases of
   the built-in ``cpu-small`` config with its recipes (or through the phases of the
   config given as ``config``), one report per phase;
4. one mining round: the weakest classes (chosen on half of val) oversampled for extra
   epochs, and a control round from the same start (same steps, LR and seeds, plain
   sampling), both measured on the other half of val;
5. a summary: accuracy per phase, the round against its control (with 95% intervals, the
   classes that lost and a warning when it did harm), the top confused pairs, the run
   folder and the command that opens the app on it.

Running it again on the same ``--out`` resumes an interrupted demo (training, then the
round) or, when everything is done, prints the summary again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir

DEMO_CONFIG = "cpu-small.yaml"


@dataclass
class DemoSummary:
    """What the demo did: paths, the per-stage reports and the mining round's report."""

    data: Path
    run_dir: Path
    inspection_dir: Path
    phases: list[dict] = field(default_factory=list)
    round: dict | None = None
    seconds: float = 0.0
    generated: bool = False


def demo_config(epochs: int | None = None, round_epochs: int | None = None,
                config: str | Path | None = None):
    """The demo's training config as a validated TrainConfig: ``config`` (a file or a
    built-in name), by default the built-in ``cpu-small`` config.

    ``epochs`` overrides every phase's epochs and ``round_epochs`` the mining round's
    (a smaller budget, as does a smaller ``config``).
    """
    from augmine.runs.config import load_config

    raw = load_config(DEMO_CONFIG if config is None else config).to_dict()
    if epochs is not None:
        for phase in raw["phases"]:
            phase["epochs"] = int(epochs)
    if round_epochs is not None:
        raw.setdefault("mining", {})["epochs"] = int(round_epochs)
    return load_config(raw)


def run_demo(out: str | Path = "runs/demo", data: str | Path | None = None,
             epochs: int | None = None, round_epochs: int | None = None,
             progress: bool = True, echo: Callable[[str], None] = print,
             skip_bad: bool = False, config: str | Path | None = None) -> DemoSummary:
    """Run (or resume) the demo into ``out`` (a path or RunDir); ``echo`` receives one line
    per step; ``skip_bad`` leaves out images that do not decode (each logged) instead of
    failing; ``config`` trains with another training config than the built-in
    ``cpu-small`` (a file or a built-in name). Returns a :class:`DemoSummary`."""
    from augmine.data.dataset import load_index
    from augmine.augment.inspection import inspect_dataset, write_report
    from augmine.core.runtime import resolve_config
    from augmine.rounds.runner import run_round
    from augmine.rounds.plans import RoundState
    from augmine.data.synth import ensure_default_dataset
    from augmine.train.phases import train_run

    start = time.perf_counter()
    run = RunDir.of(out)
    generated = data is None
    if generated:
        echo("1/5 dataset: the embedded generated dataset (made once, then cached)")
        data = ensure_default_dataset(progress=progress)
    data = Path(data).expanduser().resolve()
    index = load_index(data, skip_bad=skip_bad, verify=True)
    echo(f"    {data}: {index.num_classes} classes, {len(index.train):,} train and "
         f"{len(index.val):,} val images")

    resume = run.has_state()
    if resume:
        recorded = run.read_state()
        recorded_data = run.config.data
        if recorded_data and Path(recorded_data).resolve() != data:
            raise AugmineError(f"{run} holds a demo run on {recorded_data}, not {data}; "
                               "choose another --out or use the same --data")
        echo(f"    resuming the demo in {run} (status: {recorded.status})")

    inspection_dir = run.inspection_dir
    if not run.inspection_file.is_file():
        echo("2/5 inspecting the val set (brightness, contrast, blur, boxes, grayscale)")
        report = inspect_dataset(index, split="val", compare="train", progress=progress)
        write_report(report, inspection_dir)
        gray = report["grayscale"]
        echo(f"    {report['images']} val images, grayscale {gray['share']:.1%}; "
             f"-> {inspection_dir}")
    else:
        echo(f"2/5 inspection already in {inspection_dir}")

    cfg = demo_config(epochs, round_epochs, config)
    if config is None:
        echo(f"3/5 training a small DenseNet at 16, 32 and 64 px ({resolve_config(DEMO_CONFIG)})")
    else:
        sizes = [str(p.size) for p in cfg.phases]
        sizes = " and ".join(filter(None, [", ".join(sizes[:-1]), sizes[-1]]))
        echo(f"3/5 training {cfg.name} at {sizes} px ({config})")
    train_run(cfg, data_root=data, run_dir=run, resume=resume, progress=progress,
              skip_bad=skip_bad)

    rounds = RoundState.read(run)
    if not rounds.done:
        echo("4/5 mining round 1: oversampling the weakest classes for extra epochs, and a "
             "control round with plain sampling")
        run_round(rounds, progress=progress, skip_bad=skip_bad)
        rounds = RoundState.read(run)
    else:
        echo("4/5 mining round 1 already done")

    reports = rounds.reports
    summary = DemoSummary(data=data, run_dir=run.path, inspection_dir=inspection_dir,
                          phases=[r for r in reports if r.get("kind") == "phase"],
                          round=next((r for r in reports if r.get("kind") == "round"), None),
                          seconds=time.perf_counter() - start, generated=generated)
    echo("5/5 summary")
    for line in format_summary(summary):
        echo(line)
    return summary


def format_summary(s: DemoSummary) -> list[str]:
    """The demo's closing summary as lines of text."""
    from augmine.core.runtime import command_line
    from augmine.analysis.metrics import describe_symmetric
    from augmine.rounds.text import current_model_line, format_round_outcome

    lines = ["", f"{'stage':<10}{'size':>6}{'epochs':>8}{'total':>7}{'accuracy':>10}"
                 f"{'top-5':>8}{'macro F1':>10}"]
    for r in s.phases + ([s.round] if s.round else []):
        epochs = (r.get("meta") or {}).get("epochs")
        lines.append(f"{r['stage']:<10}{r.get('size') or '-':>6}{epochs or '-':>8}"
                     f"{r.get('epochs_done') or '-':>7}{r['accuracy']:>10.1%}"
                     f"{r['top5_accuracy']:>8.1%}{r['macro_f1']:>10.3f}")
    if s.round:
        r = s.round
        mode = (r.get("meta") or {}).get("mode", "oversample")
        lines += ["", f"mining round 1 ({mode}, from {r['before']['stage']}) against its control:",
                  *format_round_outcome(r), "  " + current_model_line(
                      s.run_dir, 1, ((r.get("meta") or {}).get("rule") or {}).get(
                          "goes_on_from", "round"))]
    last = s.round or (s.phases[-1] if s.phases else None)
    if last:
        lines += ["", f"top confused pairs ({last['stage']}, val):"]
        for p in last["symmetric_pairs"][:3]:
            lines.append(f"  {describe_symmetric(p)}")
    lines += ["", f"run folder: {s.run_dir}  ({s.seconds:.0f} s)",
              f"open the app: {command_line('app', s.run_dir, '--data', s.data)}"]
    return lines

