"""What ``train_run`` costs on top of plain ``model.fit``: same model, same feed, same data.

Each repeat runs, in one process and interleaved (A B A B ...), so that the machine's drift
hits both sides alike:

- **augmine**: :func:`augmine.train.phases.train_run` on a one-phase config of ``--epochs``
  epochs at ``--size`` px into a fresh run folder (checkpoints, history, state, the phase
  report: everything ``augmine train`` does);
- **plain**: the config's model built the same way (``build_model``: same layers, optimizer
  and schedule), then ``model.fit`` on augmine's own feeds (``train_dataset`` with the
  phase's recipe, seed and workers; ``eval_dataset`` as validation), nothing written.

Per side it records each epoch's wall time (a callback last in the list, so the epoch-end
work of augmine's own callbacks is inside it; validation too) and the whole call's wall
time (model built, every epoch, what follows the last epoch: for ``train_run`` the phase
report). It prints, per repeat and as the median over repeats:

- ``epoch_s``: the median epoch after the first (the first traces the train step);
- ``epoch_cpu_s``: the same epochs in this process's CPU time (every thread): steadier than
  wall time on a shared machine (with ``workers: 0`` the feed runs in this process too; the
  waits of ``fsync`` are not in it);
- ``run_s``: the whole call (``train_run`` against build + fit + closing the feeds).

The ratios are augmine over plain per repeat; the last line is the median of each column.

    python benchmarks/epoch_overhead.py                                 # tiny test model, sample
    python benchmarks/epoch_overhead.py --config cpu-20 --data ../shared/data/tiny-imagenet-20

``--config tiny`` is the test suite's tiny model (``tests/support.py``'s ``TINY``: a shallow
DenseNet, batch 32, ``workers: 0``, no augmentation); ``--config NAME`` is a built-in config
whose last phase (its recipe, strength and feed options) is timed. Not a test: the numbers
depend on the machine and on what else runs on it, so read medians over several repeats.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))          # support.TINY: the test suite's tiny config
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def epoch_timer():
    """A Keras callback recording each epoch's wall time (``.times``) and this process's CPU
    time, all threads (``.cpu``), from its ``on_epoch_begin`` to its ``on_epoch_end``."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times, self.cpu = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self._t, self._c = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._t)
            self.cpu.append(time.process_time() - self._c)

    return EpochTimer()


def config_for(args):
    """The TrainConfig timed: one phase of ``args.epochs`` epochs at ``args.size`` px."""
    from augmine.core.runtime import resolve_config
    from augmine.runs.config import load_config

    if args.config == "tiny":
        from support import tiny_config

        raw = tiny_config(phases=[{"size": args.size, "epochs": args.epochs, "recipe": "none"}])
    else:
        import yaml

        raw = yaml.safe_load(Path(resolve_config(args.config)).read_text())
        last = dict(raw["phases"][-1])
        last.update({"size": args.size, "epochs": args.epochs})
        raw["phases"] = [last]
    if args.workers is not None:
        raw["workers"] = args.workers
    return load_config(raw)


def augmine_side(cfg, data: Path):
    """(epoch timer, whole call s) of ``train_run`` into a fresh run folder."""
    from augmine.train.phases import train_run

    folder = Path(tempfile.mkdtemp(prefix="augmine-bench-run-"))
    timer = epoch_timer()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):          # its one line per epoch
        train_run(cfg, data, folder / "run", progress=False, extra_callbacks=[timer],
                  echo=lambda line: None)
    total = time.perf_counter() - t0
    shutil.rmtree(folder, ignore_errors=True)
    return timer, total


def plain_side(cfg, data: Path):
    """(epoch timer, whole call s) of ``model.fit`` on augmine's feeds, nothing written."""
    from augmine.data.dataset import load_index
    from augmine.feed.feeds import close_feed, eval_dataset, pipeline_errors, train_dataset
    from augmine.runs.factories import evaluation_settings
    from augmine.train.fit import build_model, distribution, dtype_policy, precision_policy
    from augmine.train.phases import phase_steps

    index = load_index(data)
    phase = cfg.phases[0]
    recipe = phase.recipe
    if phase.strength not in (None, 1):
        from augmine.augment.compose import scale_recipe

        recipe = scale_recipe(phase.recipe, phase.strength)
    _, eval_bs = evaluation_settings(cfg, phase.size)
    timer = epoch_timer()
    t0 = time.perf_counter()
    with dtype_policy(precision_policy(cfg.mixed_precision)), distribution(cfg.strategy):
        model = build_model(cfg, index.num_classes, phase_steps(cfg, index))
        train = train_dataset(index, recipe, phase.size, cfg.batch_size, seed=cfg.seed + 1,
                              workers=cfg.workers, **phase.feed_options())
        val = eval_dataset(index, phase.size, eval_bs)
        with pipeline_errors():
            model.fit(train, validation_data=val, epochs=phase.epochs, verbose=0,
                      callbacks=[timer], shuffle=False)
        close_feed(train)
        close_feed(val)
    return timer, time.perf_counter() - t0


def steady(times: list[float]) -> float:
    """The median epoch after the first (which traces the train step)."""
    return statistics.median(times[1:] if len(times) > 1 else times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny",
                        help="'tiny' (the tests' model) or a built-in config name (cpu-20)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get(
        "AUGMINE_SAMPLE", "/work/shared/data/tiny-imagenet-sample")),
                        help="dataset folder (default: $AUGMINE_SAMPLE, else the 10-class "
                             "sample)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: the config's")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs: at least 2 (the first epoch traces and is left out)")
    from augmine.core.runtime import import_keras

    keras = import_keras()
    cfg = config_for(args)
    where = (f"{platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
             f"{keras.config.backend()} backend, keras {keras.__version__}")
    what = (f"config {args.config} ({args.epochs} epochs at {args.size} px, batch "
            f"{cfg.batch_size}, workers {cfg.workers}, recipe {Path(cfg.phases[0].recipe).stem}"
            f"), data {args.data}")
    print(f"{what}\n{where}\n{time.strftime('%Y-%m-%d %H:%M:%S %Z')}", flush=True)
    keys = ("epoch_s", "epoch_cpu_s", "run_s")
    print("        " + "  ".join(f"{'augmine ' + k:>17}  {'plain ' + k:>15}  {'ratio':>5}"
                                  for k in keys), flush=True)

    def line(label, row):
        print(f"{label:>6}  " + "  ".join(
            f"{row['augmine_' + k]:>17.3f}  {row['plain_' + k]:>15.3f}  {row[k + '_ratio']:>5.2f}"
            for k in keys), flush=True)

    rows = []
    for k in range(args.repeats):
        a_timer, a_total = augmine_side(cfg, args.data)
        p_timer, p_total = plain_side(cfg, args.data)
        row = {"augmine_epoch_s": steady(a_timer.times), "plain_epoch_s": steady(p_timer.times),
               "augmine_epoch_cpu_s": steady(a_timer.cpu),
               "plain_epoch_cpu_s": steady(p_timer.cpu),
               "augmine_run_s": a_total, "plain_run_s": p_total,
               "augmine_epochs_s": a_timer.times, "plain_epochs_s": p_timer.times}
        for key in keys:
            row[key + "_ratio"] = row["augmine_" + key] / row["plain_" + key]
        rows.append(row)
        line(str(k + 1), row)
    med = {f"{side}_{key}": statistics.median(r[f"{side}_{key}"] for r in rows)
           for side in ("augmine", "plain") for key in keys}
    med.update({key + "_ratio": statistics.median(r[key + "_ratio"] for r in rows)
                for key in keys})
    line("median", med)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"what": what, "where": where, "repeats": rows,
                                         "median": med}, indent=2) + "\n")


if __name__ == "__main__":
    main()
