"""Training throughput per image size on any Keras backend: model alone, feed alone, end to end.

For each size (16, 32, 64 px by default) one model (the same weights go through every size,
as in a phased run) is measured three ways, side by side in one run:

- **model**: ``model.fit`` on in-memory uint8 batches (no input pipeline); the first call at a
  size compiles (its time is reported as ``compile s``), the second is timed;
- **feed**: one epoch of augmine's training feed (``augmine.feed.feeds.train_dataset``: worker
  processes, the phase's recipe) iterated with no model; the first epoch (worker start) is a
  warm-up, the second is timed;
- **end to end**: ``model.fit`` on that feed; the second epoch is timed.

Sizes below the source images' (64 px) get a second row with ``presize=True`` and the
in-memory decoded cache: each image is shrunk to the phase size once, so the recipe runs on
small images (the cheaper path for the feed-bound 16 px phase).

It also prints the forward FLOPs per image counted from the model's convolution and dense
layers (multiply-adds x 2) and the achieved TFLOP/s of training (3 x forward FLOPs per image x
images/s: forward, plus backward for activations and weights). Data: ``--data PATH`` or, by
default, a generated dataset written to a temporary folder. The recipe per size follows the
reference config: ``light`` at 16 px, ``tiny-imagenet-14`` above.

    python benchmarks/training.py                                   # CPU: narrow model, small budget
    KERAS_BACKEND=jax python benchmarks/training.py --full          # GPU: default DenseNet, batch 320
    python benchmarks/training.py --data ../shared/data/tiny-imagenet-sample --width 16 --growth-rate 8

Not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def forward_flops(model, size: int) -> float:
    """Forward FLOPs (2 x multiply-adds) per ``size`` x ``size`` image, counted from the
    model's Conv2D and Dense layers; the spatial side halves at each pooling layer (the
    DenseNet's transitions). Normalisation, activations and concatenation are left out."""
    import keras

    side, flops = float(size), 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            flops += 2.0 * side * side * kh * kw * cin * layer.filters
        elif isinstance(layer, keras.layers.Dense):
            flops += 2.0 * layer.input.shape[-1] * layer.units
        elif isinstance(layer, (keras.layers.AveragePooling2D, keras.layers.MaxPooling2D)):
            side = side // layer.strides[0]
    return flops


class _EpochTimer:
    """Keras callback (built lazily) that records each epoch's wall time."""

    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self._t)

        return Timer()


def _feed_epoch(feed) -> tuple[int, float]:
    """(images, seconds) for one pass over a feed (tf.data or Keras PyDataset)."""
    n, t0 = 0, time.perf_counter()
    for _, y in feed:
        n += int(y.shape[0])
    return n, time.perf_counter() - t0


def dataset_for(args) -> tuple[Path, str]:
    if args.data:
        return Path(args.data), str(args.data)
    from augmine.data.synth import write_synthetic_dataset

    root = Path(tempfile.mkdtemp(prefix="augmine-bench-")) / "data"
    t0 = time.perf_counter()
    write_synthetic_dataset(root, num_classes=args.synth_classes,
                            train_per_class=args.synth_per_class, val_per_class=2, seed=0)
    what = (f"generated dataset, {args.synth_classes} classes x {args.synth_per_class} train "
            f"images (64x64 JPEG, written in {time.perf_counter() - t0:.0f} s)")
    return root, what


def measure(args) -> dict:
    import numpy as np

    from augmine.data.dataset import load_index
    from augmine.model.sources import build_densenet
    from augmine.feed.feeds import close_feed, pipeline_errors, train_dataset
    from augmine.feed.sampling import epoch_length
    from augmine.core.runtime import resolve_recipe
    from augmine.core.runtime import import_keras
    from augmine.train.fit import gpu_present

    keras = import_keras()
    gpu = gpu_present()
    batch = args.batch_size or (320 if gpu else 32)
    precision = args.precision
    if precision == "auto":
        precision = "mixed_float16" if gpu else "float32"
    keras.mixed_precision.set_global_policy(precision)
    root, data_what = dataset_for(args)
    index = load_index(root)
    num_classes = args.classes or index.num_classes
    model_kw = {} if args.full else {"width": args.width or 16, "growth_rate": args.growth_rate or 8}
    if args.full and (args.width or args.growth_rate):
        model_kw = {"width": args.width, "growth_rate": args.growth_rate}
    model_kw = {k: v for k, v in model_kw.items() if v}
    model = build_densenet(max(num_classes, index.num_classes), **model_kw)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    workers = args.workers
    result = {"backend": keras.config.backend(), "keras": keras.__version__,
              "device": "GPU" if gpu else "CPU", "precision": precision, "batch_size": batch,
              "params": int(model.count_params()), "model": model_kw or "default",
              "cpu_count": os.cpu_count(), "machine": platform.machine(), "data": data_what,
              "train_images": len(index.train), "workers": workers, "sizes": {}}
    print(f"{result['backend']} backend, {result['device']}, {precision}, batch {batch}, "
          f"{result['params']:,} parameters; data: {data_what}", flush=True)
    header = (f"{'size':>4}  {'model img/s':>11}  {'feed img/s':>10}  {'end-to-end':>10}  "
              f"{'e2e/model':>9}  {'compile s':>9}  {'GFLOP/img':>9}  {'TFLOP/s':>7}  recipe")
    print(header, flush=True)
    rng = np.random.default_rng(0)
    for size in args.sizes:
        recipe = resolve_recipe("light" if size <= 16 else "tiny-imagenet-14")
        steps = args.steps or (40 if gpu else 4)
        x = rng.integers(0, 256, (steps * batch, size, size, 3), dtype=np.uint8)
        y = rng.integers(0, index.num_classes, steps * batch).astype(np.int32)
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        model_ips = len(x) / (time.perf_counter() - t0)

        flops = forward_flops(model, size)
        variants = [("", {})]
        if size < args.source_size and not args.no_presize:
            # the cheaper small-phase path: images shrunk to the phase size once (cached)
            variants.append((" presize", {"presize": True, "cache": "memory"}))
        for tag, feed_kw in variants:
            feed = train_dataset(index, recipe, size, batch, seed=0, workers=workers, **feed_kw)
            with pipeline_errors():
                _feed_epoch(feed)                                # warm-up: workers start
                n, secs = _feed_epoch(feed)
                feed_ips = n / secs
                timer = _EpochTimer()
                model.fit(feed, epochs=2, verbose=0, callbacks=[timer])
            close_feed(feed)
            e2e_ips = epoch_length(index) / timer.times[-1]
            tflops = 3 * flops * e2e_ips / 1e12
            row = {"model_images_per_s": model_ips, "feed_images_per_s": feed_ips,
                   "end_to_end_images_per_s": e2e_ips,
                   "end_to_end_over_model": e2e_ips / model_ips, "compile_s": compile_s,
                   "forward_gflop_per_image": flops / 1e9, "train_tflops_achieved": tflops,
                   "recipe": recipe.stem + tag}
            result["sizes"][f"{size}{tag.replace(' ', '-')}"] = row
            print(f"{size:>4}  {model_ips:>11,.0f}  {feed_ips:>10,.0f}  {e2e_ips:>10,.0f}  "
                  f"{e2e_ips / model_ips:>8.0%}  {compile_s:>9.1f}  {flops / 1e9:>9.3f}  "
                  f"{tflops:>7.2f}  {recipe.stem}{tag}", flush=True)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: 320 on a GPU, 32 on a CPU")
    parser.add_argument("--steps", type=int, default=None,
                        help="in-memory batches for the model-only timing (default 40 GPU, 4 CPU)")
    parser.add_argument("--full", action="store_true",
                        help="the default DenseNet (8.9M parameters); else a narrow one")
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--growth-rate", type=int, default=None)
    parser.add_argument("--classes", type=int, default=None,
                        help="classifier outputs (default: the dataset's classes)")
    parser.add_argument("--precision", default="auto",
                        choices=["auto", "mixed_float16", "mixed_bfloat16", "float32"])
    parser.add_argument("--workers", type=int, default=None,
                        help="feed worker processes (default: one per core)")
    parser.add_argument("--no-presize", action="store_true",
                        help="skip the presize rows (small sizes: images shrunk once, cached)")
    parser.add_argument("--source-size", type=int, default=64,
                        help="side of the dataset's images; smaller sizes get a presize row")
    parser.add_argument("--data", default=None, help="dataset folder (default: generated)")
    parser.add_argument("--synth-classes", type=int, default=20)
    parser.add_argument("--synth-per-class", type=int, default=100)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    result = measure(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
