"""Input-pipeline throughput: augmine's worker processes vs the usual tf.data patterns.

    python benchmarks/pipeline.py --data PATH [--images 5000] [--size 64] [--batch 256]

On the same images (the train split cycled to ``--images``) and the same recipe
(``augmine/builtin/tiny-imagenet-14.yaml``), prints images/s and cores busy (CPU time of this
process and all its descendants / wall time) for:

- augmine's pipeline (``augmine.pipeline.train_dataset``) with 1, 2 and all workers;
- one Python process, plain loop (decode + recipe);
- tf.data + ``tf.numpy_function`` per image with AUTOTUNE (the usual pattern);
- tf.data with tf.image ops + Keras random layers on batches;

then the cost per image of each recipe transform (forced to p=1). Every timing ends at the
last batch, before the iterator is destroyed (TensorFlow sometimes stalls 0.5-2.4 s there).
Not a test: the numbers depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the 14 transforms of DESIGN.md, used when augmine/builtin/tiny-imagenet-14.yaml is absent
FALLBACK_14 = [
    ("RandomResizedCrop", dict(scale=(0.35, 1.0))), ("HorizontalFlip", {}),
    ("Affine", dict(rotate=(-15, 15), scale=(0.9, 1.1))), ("RandomBrightnessContrast", {}),
    ("HueSaturationValue", {}), ("RGBShift", {}), ("ToGray", {}), ("CLAHE", {}),
    ("GaussianBlur", dict(blur_limit=(3, 5))), ("Sharpen", {}),
    ("GaussNoise", dict(std_range=(0.02, 0.08))), ("Perspective", dict(scale=(0.02, 0.06))),
    ("ImageCompression", dict(quality_range=(50, 95))), ("CoarseDropout", {}),
]
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """CPU time of this process, its reaped children and every live descendant (/proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                f = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = (int(f[1]), sum(int(x) for x in f[11:15]))
    me, total, frontier = os.getpid(), parents.get(os.getpid(), (0, 0))[1], [os.getpid()]
    while frontier:
        p = frontier.pop()
        for pid, (ppid, ticks) in parents.items():
            if ppid == p:
                total += ticks
                frontier.append(pid)
    return total / _TICK if me in parents else float("nan")


class Meter:
    def __enter__(self):
        self.t, self.c = time.perf_counter(), cpu_seconds()
        return self

    def stop(self, images: int):
        """Call at the last batch (before teardown)."""
        self.wall = time.perf_counter() - self.t
        self.cores = (cpu_seconds() - self.c) / self.wall
        self.rate = images / self.wall

    def __exit__(self, *exc):
        return False


def make_compose(size: int):
    import albumentations as A

    recipe = Path(__file__).resolve().parents[1] / "augmine" / "builtin" / "tiny-imagenet-14.yaml"
    if recipe.exists():
        from augmine.recipes import build_compose

        return build_compose(recipe, size), recipe.name
    ts = [getattr(A, name)(**({"size": (size, size)} if name == "RandomResizedCrop" else {}), **kw)
          for name, kw in FALLBACK_14]
    return A.Compose(ts), "DESIGN.md 14-transform list (fallback)"


def run_augmine(index, compose, size, batch, workers):
    from augmine.pipeline import train_dataset

    ds = train_dataset(index, compose, size, batch, seed=0, workers=workers)
    n = 0
    with Meter() as m:
        it = iter(ds)
        for _, y in it:
            n += len(y)
        m.stop(n)
    del it
    return m


def run_plain(paths, compose, size):
    from augmine.dataset import read_image

    with Meter() as m:
        out = np.empty((len(paths), size, size, 3), np.uint8)
        for i, p in enumerate(paths):
            out[i] = compose(image=read_image(p))["image"]
        m.stop(len(paths))
    return m


def run_numpy_function(paths, labels, compose, size, batch):
    from augmine.runtime import import_tensorflow

    tf = import_tensorflow()

    def aug(img):
        return compose(image=img)["image"]

    def tf_aug(img, y):
        out = tf.numpy_function(aug, [img], tf.uint8)
        out.set_shape((size, size, 3))
        return out, y

    ds = (tf.data.Dataset.from_tensor_slices((paths, labels))
          .map(lambda p, y: (tf.io.decode_jpeg(tf.io.read_file(p), channels=3), y),
               num_parallel_calls=tf.data.AUTOTUNE)
          .map(tf_aug, num_parallel_calls=tf.data.AUTOTUNE)
          .batch(batch)
          .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
          .prefetch(tf.data.AUTOTUNE))
    return _drain(ds)


def run_keras_layers(paths, labels, size, batch):
    from augmine.runtime import import_tensorflow

    tf = import_tensorflow()
    import keras

    layers = keras.Sequential([
        keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.05),
        keras.layers.RandomZoom((-0.3, 0.1)), keras.layers.RandomTranslation(0.1, 0.1),
        keras.layers.RandomContrast(0.3), keras.layers.RandomBrightness(0.2, value_range=(0, 1)),
    ])

    def augment(x, y):
        x = tf.image.resize(tf.cast(x, tf.float32) / 255.0, (size, size))
        x = tf.image.random_hue(x, 0.05)
        x = tf.image.random_saturation(x, 0.7, 1.3)
        x = layers(x, training=True)
        return tf.clip_by_value(x, 0.0, 1.0), y

    ds = (tf.data.Dataset.from_tensor_slices((paths, labels))
          .map(lambda p, y: (tf.io.decode_jpeg(tf.io.read_file(p), channels=3), y),
               num_parallel_calls=tf.data.AUTOTUNE)
          .batch(batch)
          .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
          .prefetch(tf.data.AUTOTUNE))
    return _drain(ds)


def _drain(ds):
    n = 0
    with Meter() as m:
        it = iter(ds)
        for _, y in it:
            n += int(y.shape[0])
        m.stop(n)
    del it
    return m


def transform_costs(compose, images, repeats=1):
    """(name, microseconds per image with p=1) for each top-level transform of ``compose``."""
    rows = []
    for t in compose.transforms:
        t = copy.deepcopy(t)
        t.p = 1.0
        for img in images[:20]:                     # warm-up
            t(image=img)
        start = time.perf_counter()
        for _ in range(repeats):
            for img in images:
                t(image=img)
        rows.append((type(t).__name__, (time.perf_counter() - start) / (len(images) * repeats) * 1e6))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="dataset folder (Tiny-ImageNet layout)")
    ap.add_argument("--images", type=int, default=5000, help="train images, cycled (default 5000)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--skip-tf", action="store_true", help="only augmine and the plain loop")
    args = ap.parse_args(argv)

    import cv2

    from augmine.dataset import Split, load_images, load_index
    from augmine.pipeline import _default_workers

    cv2.setNumThreads(0)   # as in the workers; OpenCV's thread pool slows 64 px images
    index = load_index(args.data)
    tr = index.train
    take = np.resize(np.arange(len(tr)), args.images)
    sub = Split("train", tr.paths[take], tr.labels[take], tr.boxes[take])
    index = replace(index, splits={**index.splits, "train": sub})
    paths, labels = [str(p) for p in sub.paths], sub.labels.astype(np.int32)
    compose, recipe_name = make_compose(args.size)
    cores = _default_workers()
    load = os.getloadavg()
    print(f"{args.images} images ({len(tr)} distinct) from {args.data}, {args.size} px, batch "
          f"{args.batch}, recipe {recipe_name} ({len(compose.transforms)} transforms); "
          f"{cores} cores; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    results = {}
    run_augmine(replace(index, splits={"train": Split("train", sub.paths[:64], sub.labels[:64],
                                                        sub.boxes[:64])}),
                compose, args.size, 32, 1)                     # start the fork server once
    results["plain loop, 1 process"] = run_plain(paths, compose, args.size)
    for w in sorted({1, 2, cores}):
        results[f"augmine, {w} worker{'s' if w > 1 else ''}"] = run_augmine(
            index, compose, args.size, args.batch, w)
    if not args.skip_tf:
        results["tf.numpy_function per image, AUTOTUNE"] = run_numpy_function(
            paths, labels, compose, args.size, args.batch)
        results["tf.image + Keras random layers, batches"] = run_keras_layers(
            paths, labels, args.size, args.batch)

    plain = results["plain loop, 1 process"].rate
    npf = results.get("tf.numpy_function per image, AUTOTUNE")
    ker = results.get("tf.image + Keras random layers, batches")
    head = f"{'pipeline':42s} {'images/s':>9s} {'cores':>6s} {'x plain':>8s}"
    head += f" {'x np_func':>9s} {'x keras':>8s}" if npf else ""
    print("\n" + head + "\n" + "-" * len(head))
    for name, m in results.items():
        row = f"{name:42s} {m.rate:9.0f} {m.cores:6.2f} {m.rate / plain:8.2f}"
        if npf:
            row += f" {m.rate / npf.rate:9.2f} {m.rate / ker.rate:8.2f}"
        print(row)
    best = results[f"augmine, {cores} worker{'s' if cores > 1 else ''}"].rate
    print(f"\naugmine with all {cores} workers = {best / (cores * plain):.0%} of "
          f"{cores} x the single-process rate (target >= 90%)")
    one = results["augmine, 1 worker"].rate
    if cores > 1:
        print(f"scaling 1 -> {cores} workers: {best / one:.2f}x")

    imgs = load_images(paths[:400])
    print(f"\ncost per image of each transform (p forced to 1; {len(imgs)} images, "
          f"{imgs[0].shape[1]}x{imgs[0].shape[0]} input)")
    rows = transform_costs(compose, imgs)
    for name, us in sorted(rows, key=lambda r: -r[1]):
        print(f"  {name:28s} {us:7.1f} us")
    start = time.perf_counter()
    for img in imgs:
        compose(image=img)
    print(f"  {'whole recipe (its own p)':28s} {(time.perf_counter() - start) / len(imgs) * 1e6:7.1f} us")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
