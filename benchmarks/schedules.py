"""CPU proxy: the reference schedule shape (fixed step-count half cycle) against the
phase-aligned one (``half_cycle: auto``), same model, data, seed and epochs, in one run.

Both runs use the ``cpu-small`` config (narrow DenseNet, batch 64) with its phases cut or
stretched to ``--epochs`` (e.g. ``2 2 2``) on the given dataset; only ``schedule`` differs:

- ``reference``: cpu-small's own triangular cycle with a fixed ``half_cycle`` in steps
  (the reference run's form: it ignores where phases end);
- ``phase-aligned``: the same min/max LR with ``half_cycle: auto`` (one triangle per phase,
  so every phase ends at ``min_lr``).

Prints a table: final and best val top-1 per schedule, the LR at each phase end (from
history.csv) and wall time. A proxy only: tiny model, tiny data, few epochs; it shows the
schedules behave as designed, not what they reach on the full Tiny-ImageNet.

    python benchmarks/schedules.py --data ../shared/data/tiny-imagenet-sample --epochs 2 2 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="dataset folder (Tiny-ImageNet layout)")
    ap.add_argument("--epochs", type=int, nargs="+", default=[2, 2, 2],
                    help="epochs per phase (16, 32, 64 px)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="folder for the two run folders")
    args = ap.parse_args(argv)

    from augmine.runs.config import load_config
    from augmine.core.runtime import resolve_config
    from augmine.train.phases import train_run

    base = load_config(resolve_config("cpu-small")).to_dict()
    if len(args.epochs) != len(base["phases"]):
        ap.error(f"--epochs needs {len(base['phases'])} numbers, one per phase")
    for phase, epochs in zip(base["phases"], args.epochs):
        phase["epochs"] = epochs
    base.update(workers=args.workers, mixed_precision="false", strategy="default")
    ref = dict(base["schedule"])
    aligned = {k: v for k, v in ref.items() if k != "half_cycle"} | {"half_cycle": "auto"}
    out = args.out or Path(tempfile.mkdtemp(prefix="augmine-schedules-"))
    rows = []
    for name, schedule in (("reference", ref), ("phase-aligned", aligned)):
        cfg = {**base, "name": name, "schedule": schedule}
        start = time.perf_counter()
        result = train_run(cfg, args.data, out / name, progress=False)
        took = time.perf_counter() - start
        hist = result.history
        ends = [float(r["lr"]) for i, r in enumerate(hist)
                if i + 1 == len(hist) or hist[i + 1]["phase"] != r["phase"]]
        vals = [float(r["val_accuracy"]) for r in hist]
        rows.append((name, schedule, vals[-1], max(vals), ends, took))

    print(f"data {args.data} ({load_config(base).batch_size} per batch), "
          f"epochs per phase {args.epochs}, run folders in {out}")
    print("| schedule | half_cycle | final val top-1 | best val top-1 | LR at phase ends "
          "| wall s |")
    print("|---|---|---|---|---|---|")
    for name, schedule, final, best, ends, took in rows:
        lr_text = " / ".join(f"{v:.4f}" for v in ends)
        print(f"| {name} | {schedule['half_cycle']} | {final:.1%} | {best:.1%} | {lr_text} "
              f"| {took:.0f} |")
    print(f"(min_lr {ref['min_lr']}, max_lr {ref['max_lr']})")


if __name__ == "__main__":
    main()
