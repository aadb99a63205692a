"""What a mining round touches and traces: augmine modules run, and Keras steps traced.

Trains a tiny run in a temporary folder (``state_parses.py``'s tiny DenseNet: one phase of
``--epochs`` epochs at 16 px), keeps a copy of it, then, each in this process through the
CLI (click's ``CliRunner``):

- ``augmine mine round RUN --epochs 1`` (the round and its control) under
  ``sys.setprofile`` and ``threading.setprofile``: it prints how many distinct ``augmine.*``
  modules had a Python function called (``frame.f_globals["__name__"]`` of each call;
  module bodies run by an import are not counted), per package, and with ``--list`` each
  module;
- ``augmine mine compare COPY --epochs 1`` (every mode and the control, ``--seeds``) on the
  copy (the run as trained). Per arm (the ``label`` of ``augmine.rounds.runner.train_arm``;
  what runs between arms, such as ``gentle``'s recipe or the start model's predictions, is
  ``outside arms``) it prints the Keras step functions made (``make_train_function``,
  ``make_test_function``, ``make_predict_function`` calls that built a new one) and the
  traces: each time ``train_step``, ``test_step`` or ``predict_step`` runs inside a
  ``tf.function`` being traced (their Python bodies run only then; a retrace, e.g. for a
  last partial batch, counts again). It also times each train function's first call (the
  trace and the first step) against the median of its later calls (one step each), and
  each arm as a whole (``train_arm``: its epochs and its final predictions). Models kept
  by the round for reuse (``augmine.train.evaluation``) are dropped first: each command
  starts as in a process of its own.

Then ``augmine recipe compare none light --data DATA --config TINY --seeds 2`` (two
phases, 16 and 32 px, one epoch each: 4 runs) in this process: its Keras steps made and traced per run (each run's
``train_run``; ``--recipe-compare-only`` runs this part alone).

The round's traces are printed too. Needs the TensorFlow backend (on JAX a step's Python
body also runs once per trace, on PyTorch once per step).

    python benchmarks/round_footprint.py                  # the embedded generated dataset
    python benchmarks/round_footprint.py --data ../shared/data/tiny-imagenet-sample --list

Not a test: the counts are exact for today's code; the times depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml                                  # noqa: E402
from click.testing import CliRunner          # noqa: E402

from augmine.cli import cli                  # noqa: E402
from state_parses import TINY                # noqa: E402

OUTSIDE = "outside arms"


@contextmanager
def augmine_modules():
    """Yield a set filled with the ``augmine.*`` modules whose functions are called inside."""
    seen: set[str] = set()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_name != "<module>":
            seen.add(frame.f_globals.get("__name__", ""))

    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        found = {m for m in seen if m == "augmine" or m.startswith("augmine.")}
        seen.clear()
        seen.update(found)


class StepCounter:
    """Counts Keras step functions made and traced, and times train calls, per arm."""

    KINDS = ("train", "test", "predict")

    def __init__(self):
        import keras
        import tensorflow as tf

        self.arm = OUTSIDE
        self.order, self.took = [], {}           # arms in the order they trained, seconds
        self.made, self.traced = Counter(), Counter()
        self.first, self.later = defaultdict(list), defaultdict(list)
        self.shapes = defaultdict(Counter)      # kind -> first input's shape at each trace
        self.saved = []
        for kind in self.KINDS:
            self._patch(keras.Model, f"{kind}_step", self._traced_step(kind, tf))
            self._patch(keras.Model, f"make_{kind}_function", self._made_function(kind))

    def _patch(self, owner, name, wrap):
        original = getattr(owner, name)
        self.saved.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, wrap(original))

    def restore(self):
        for owner, name, original in reversed(self.saved):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)

    def _traced_step(self, kind, tf):
        def wrap(step):
            def counted(model, data):
                if tf.inside_function():
                    self.traced[self.arm, kind] += 1
                    self.shapes[kind][tuple(tf.nest.flatten(data)[0].shape)] += 1
                return step(model, data)
            return counted
        return wrap

    def _made_function(self, kind):
        attribute = f"{kind}_function"

        def wrap(make):
            def counted(model, force=False):
                before = getattr(model, attribute)
                make(model, force)
                made = getattr(model, attribute)
                if made is not before:
                    self.made[self.arm, kind] += 1
                    if kind == "train":
                        setattr(model, attribute, self._timed(made))
                return getattr(model, attribute)
            return counted
        return wrap

    def _timed(self, function):
        arm, calls = self.arm, []

        def timed(iterator):
            start = time.perf_counter()
            try:
                return function(iterator)
            finally:
                (self.later if calls else self.first)[arm].append(time.perf_counter() - start)
                calls.append(1)
        return timed

    def per_arm(self, arm: str) -> str:
        made = "/".join(str(self.made[arm, k]) for k in self.KINDS)
        traced = "/".join(str(self.traced[arm, k]) for k in self.KINDS)
        line = f"made {made}, traced {traced} (train/test/predict)"
        if arm in self.took:
            line += f"; arm {self.took[arm]:.1f} s"
        if self.first[arm]:
            first = ", ".join(f"{t:.2f}" for t in self.first[arm])
            later = statistics.median(self.later[arm]) if self.later[arm] else float("nan")
            line += f"; first train call {first} s, later steps median {later * 1000:.0f} ms"
        return line

    def arms(self) -> list[str]:
        return list(dict.fromkeys([*self.order, *(a for a, _ in [*self.made, *self.traced])]))

    def totals(self) -> str:
        made = "/".join(str(sum(n for (_, k), n in self.made.items() if k == kind))
                        for kind in self.KINDS)
        traced = "/".join(str(sum(n for (_, k), n in self.traced.items() if k == kind))
                          for kind in self.KINDS)
        shapes = "; ".join(f"{kind} " + ", ".join(f"{list(s)} x{n}" for s, n in shapes.items())
                           for kind, shapes in self.shapes.items())
        return f"made {made}, traced {traced} (train/test/predict); traced input shapes: {shapes}"

    def clear(self):
        for counts in (self.made, self.traced, self.first, self.later, self.shapes, self.order,
                       self.took):
            counts.clear()


def invoke(command: list) -> str:
    """Run ``augmine COMMAND`` in this process; its output (exit on failure)."""
    res = CliRunner().invoke(cli, [str(a) for a in command])
    if res.exit_code != 0:
        raise SystemExit(f"augmine {' '.join(map(str, command))} failed:\n{res.output}"
                         + (f"\n{res.exception!r}" if res.exception else ""))
    return res.output


def recipe_compare(steps: StepCounter, folder: Path, data: str) -> None:
    """``recipe compare none light --seeds 2`` on two phases (16 and 32 px, one epoch each):
    its steps made and traced per run (``train_run``), from no kept model."""
    import augmine.train.phases as phases
    from augmine.train.evaluation import forget_models

    config = folder / "two-sizes.yaml"
    config.write_text(yaml.safe_dump({**TINY, "phases": [
        {"size": 16, "epochs": 1, "recipe": "none"}, {"size": 32, "epochs": 1,
                                                       "recipe": "none"}]}))
    train_run = phases.train_run

    def labelled_run(config, data_root=None, run_dir="runs/run", **kw):
        steps.arm = Path(str(run_dir)).name
        steps.order.append(steps.arm)
        start = time.perf_counter()
        try:
            return train_run(config, data_root, run_dir, **kw)
        finally:
            steps.took[steps.arm] = time.perf_counter() - start
            steps.arm = OUTSIDE

    steps.clear()
    forget_models()
    phases.train_run = labelled_run
    try:
        start = time.perf_counter()
        invoke(["recipe", "compare", "none", "light", "--data", data, "--config", config,
                "--seeds", 2, "--out", folder / "recipe-compare", "--no-progress"])
    finally:
        phases.train_run = train_run
    print(f"augmine recipe compare none light --data DATA --config TINY --seeds 2 "
          f"(16 and 32 px, {time.perf_counter() - start:.0f} s):")
    for arm in steps.arms():
        print(f"  {arm}: {steps.per_arm(arm)}")
    print(f"  total: {steps.totals()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None,
                    help="dataset folder (Tiny-ImageNet layout) [the embedded generated one]")
    ap.add_argument("--epochs", type=int, default=2, help="the run's epochs (default 2)")
    ap.add_argument("--seeds", type=int, default=1, help="mine compare --seeds (default 1)")
    ap.add_argument("--list", action="store_true", help="list every module the round ran")
    ap.add_argument("--recipe-compare-only", action="store_true",
                    help="count recipe compare's traces only (no round, no mine compare)")
    args = ap.parse_args()
    from augmine.core.runtime import keras_backend

    if keras_backend() != "tensorflow":
        raise SystemExit(f"the trace count needs the TensorFlow backend, not {keras_backend()}")
    if args.data is None:
        from augmine.data.synth import ensure_default_dataset

        args.data = str(ensure_default_dataset())
    folder = Path(tempfile.mkdtemp(prefix="augmine-round-footprint-"))
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "phases": [
        {"size": 16, "epochs": args.epochs, "recipe": "none"}]}))
    run, copy = folder / "run", folder / "compare-run"
    import keras

    print(f"Keras {keras.__version__}, backend {keras_backend()}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs; data {args.data}; tiny run of "
          f"{args.epochs} epochs at 16 px in {folder}")
    invoke(["train", config, "--data", args.data, "--run-dir", run, "--no-progress"])
    shutil.copytree(run, copy)

    import augmine.rounds.compare as compare
    steps = StepCounter()
    train_arm = compare.train_arm

    def labelled_arm(*a, label=None, **kw):
        steps.arm = label or "arm"
        steps.order.append(steps.arm)
        start = time.perf_counter()
        try:
            return train_arm(*a, label=label, **kw)
        finally:
            steps.took[steps.arm] = time.perf_counter() - start
            steps.arm = OUTSIDE

    compare.train_arm = labelled_arm
    try:
        if args.recipe_compare_only:
            return recipe_compare(steps, folder, args.data)
        start = time.perf_counter()
        with augmine_modules() as modules:
            invoke(["mine", "round", run, "--epochs", 1, "--no-progress"])
        took = time.perf_counter() - start
        packages = Counter(".".join(m.split(".")[:2]) for m in modules)
        print(f"augmine mine round RUN --epochs 1 ({took:.0f} s under the profiler): "
              f"{len(modules)} augmine modules ran, in {len(packages)} packages: "
              + ", ".join(f"{p} {n}" for p, n in sorted(packages.items(), key=lambda x: -x[1])))
        print(f"  its Keras steps (round and control): {steps.totals()}")
        if args.list:
            for m in sorted(modules):
                print(f"    {m}")
        steps.clear()
        try:
            from augmine.train.evaluation import forget_models
        except ImportError:                   # before trace once: nothing is kept
            pass
        else:
            forget_models()
        start = time.perf_counter()
        output = invoke(["mine", "compare", copy, "--epochs", 1, "--seeds", args.seeds,
                         "--no-progress"])
        print(f"augmine mine compare RUN --epochs 1 --seeds {args.seeds} "
              f"({time.perf_counter() - start:.0f} s):")
        for line in output.splitlines():
            if line.startswith("compare: skipping"):
                print(f"  {line}")
        for arm in steps.arms():
            print(f"  {arm}: {steps.per_arm(arm)}")
        print(f"  total: {steps.totals()}")
        recipe_compare(steps, folder, args.data)
    finally:
        compare.train_arm = train_arm
        steps.restore()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
