"""Training throughput of the DenseNet at 16, 32 and 64 px, and the epoch-cost ratios.

Measures the model alone (train steps on in-memory random batches, no input pipeline):
for each size, a warm-up step first (the first step at a new size compiles), then
``--steps`` timed steps. Prints images/s per size and how much a 64 px epoch costs
relative to a 16 px and a 32 px epoch (same number of images, so the ratio of the
per-image times). Mixed precision is on when a GPU is present (``--mixed-precision``).

    python benchmarks/training.py                       # default model, this machine
    python benchmarks/training.py --width 16 --growth-rate 8 --steps 10
    python benchmarks/training.py --batch-size 320 --steps 20   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def measure(sizes, batch_size: int, steps: int, width: int | None, growth_rate: int | None,
            num_classes: int, mixed: str) -> dict:
    import numpy as np

    from augmine.runtime import import_tensorflow

    tf = import_tensorflow()
    import keras

    from augmine.model import DEFAULT_GROWTH_RATE, DEFAULT_WIDTH, build_densenet
    from augmine.schedules import CyclicLR
    from augmine.training import precision_policy

    policy = precision_policy(mixed)
    use_mp = policy != "float32"
    keras.mixed_precision.set_global_policy(policy)
    width = width or DEFAULT_WIDTH
    growth_rate = growth_rate or DEFAULT_GROWTH_RATE
    model = build_densenet(num_classes, width=width, growth_rate=growth_rate)
    model.compile(optimizer=keras.optimizers.SGD(CyclicLR(), momentum=0.9, nesterov=True),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    gpus = tf.config.list_physical_devices("GPU")
    result = {"params": int(model.count_params()), "width": width, "growth_rate": growth_rate,
              "num_classes": num_classes, "batch_size": batch_size, "steps": steps,
              "mixed_precision": use_mp, "device": "GPU" if gpus else "CPU",
              "gpus": [g.name for g in gpus], "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "tensorflow": tf.__version__,
              "keras": keras.__version__, "sizes": {}}
    for size in sizes:
        x = tf.constant(rng.random((batch_size, size, size, 3), dtype=np.float32))
        y = tf.constant(rng.integers(0, num_classes, batch_size).astype(np.int32))
        t0 = time.perf_counter()
        model.train_on_batch(x, y)             # compiles for this size
        warm = time.perf_counter() - t0
        model.train_on_batch(x, y)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            loss = model.train_on_batch(x, y)  # returns host values: the step has finished
            times.append(time.perf_counter() - t0)
        del loss
        per_step = float(np.median(times))
        result["sizes"][size] = {"images_per_s": batch_size / per_step,
                                 "step_s_median": per_step, "step_s_min": float(min(times)),
                                 "first_step_s": warm}
        print(f"{size:>3} px  {batch_size / per_step:9.1f} images/s   "
              f"(median step {per_step * 1000:.0f} ms, first step {warm:.1f} s)", flush=True)
    ips = {s: v["images_per_s"] for s, v in result["sizes"].items()}
    ratios = {}
    for small in (16, 32):
        if 64 in ips and small in ips:
            ratios[f"64/{small}"] = ips[small] / ips[64]
    result["epoch_cost_ratios"] = ratios
    for name, value in ratios.items():
        print(f"epoch cost {name} px: {value:.1f}x")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: 320 on a GPU, 32 on a CPU")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per size (default: 20 on a GPU, 3 on a CPU)")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--growth-rate", type=int, default=None)
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--mixed-precision", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()

    from augmine.runtime import import_tensorflow

    gpu = bool(import_tensorflow().config.list_physical_devices("GPU"))
    batch = args.batch_size or (320 if gpu else 32)
    steps = args.steps or (20 if gpu else 3)
    result = measure(args.sizes, batch, steps, args.width, args.growth_rate, args.classes,
                     args.mixed_precision)
    print(f"model: {result['params']:,} parameters, batch {batch}, {result['device']}, "
          f"mixed precision {'on' if result['mixed_precision'] else 'off'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
