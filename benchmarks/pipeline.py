"""Input-pipeline throughput: augmine's worker processes vs the plain loop and tf.data patterns.

    python benchmarks/pipeline.py --data PATH [--data PATH2 ...] [--images N] [--size 64]
                                  [--small-size 16] [--batch 256] [--skip-tf]

For each dataset (its train split; ``--images`` cycles or cuts it to N images, default all)
and the same recipe (``augmine/builtin/tiny-imagenet-14.yaml``), prints images/s and cores busy (CPU
time of this process and all its descendants / wall time) for:

- one Python process, plain loop (decode + recipe): the single-core reference;
- augmine's feed (``augmine.pipeline.train_dataset``, uint8 tf.data batches) with 1, 2 and
  all workers: the second epoch (persistent workers, the steady state training sees) and the
  first (which includes starting the workers);
- the small phase (``--small-size``, default 16 px): the plain loop, augmine as is, and
  augmine with ``presize=True`` (each image shrunk to 16 px once, before the recipe) without
  and with the decoded-image cache;
- first dataset only, unless ``--skip-tf``: tf.data + ``tf.numpy_function`` per image with
  AUTOTUNE (the usual pattern) and tf.image ops + Keras random layers on batches;

then a side-by-side summary (augmine with all workers as a share of ``cores x plain``, the
ideal; target >= 90%; and the same per CPU-second, images per second of CPU time of every
process involved, which other jobs on a shared machine do not skew) and the cost per image of each recipe transform (forced to p=1).
Every timing ends at the last batch, before the iterator is destroyed (TensorFlow sometimes
stalls 0.5-2.4 s there). Not a test: the numbers depend on what else runs on the machine.
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


def run_augmine(index, compose, size, batch, workers, epochs=2, **kwargs):
    """Meters of ``epochs`` consecutive epochs of one train_dataset (workers persist)."""
    from augmine.pipeline import close_feed, train_dataset

    ds = train_dataset(index, compose, size, batch, seed=0, workers=workers, **kwargs)
    meters = []
    for _ in range(epochs):
        n = 0
        with Meter() as m:
            it = iter(ds)
            for _, y in it:
                n += len(y)
            m.stop(n)
        del it
        meters.append(m)
    close_feed(ds)
    return meters


def run_plain(paths, compose, size, presize=False):
    from augmine.dataset import read_image
    from augmine.pipeline import presized

    with Meter() as m:
        out = np.empty((len(paths), size, size, 3), np.uint8)
        for i, p in enumerate(paths):
            img = read_image(p)
            out[i] = compose(image=presized(img, size) if presize else img)["image"]
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


def load_subset(data, images):
    """The dataset's index with its train split cycled/cut to ``images`` (0 = as it is)."""
    from augmine.dataset import Split, load_index

    index = load_index(data)
    tr = index.train
    take = np.resize(np.arange(len(tr)), images) if images else np.arange(len(tr))
    sub = Split("train", tr.paths[take], tr.labels[take], tr.boxes[take])
    return replace(index, splits={**index.splits, "train": sub}), len(tr)


def bench_dataset(data, args, cores, with_tf):
    """All measurements on one dataset: ``{row name: Meter}`` and a description line."""
    from augmine.dataset import Split

    index, distinct = load_subset(data, args.images)
    sub = index.train
    paths, labels = [str(p) for p in sub.paths], sub.labels.astype(np.int32)
    compose, recipe_name = make_compose(args.size)
    small, _ = make_compose(args.small_size)
    warm = replace(index, splits={"train": Split("train", sub.paths[:64], sub.labels[:64],
                                                 sub.boxes[:64])})
    run_augmine(warm, compose, args.size, 32, 1, epochs=1)        # start the fork server once
    for p in dict.fromkeys(paths):          # files into the page cache: no row pays the disk
        Path(p).read_bytes()
    rows = {}
    worker_counts = sorted({1, 2, cores})
    rows["plain loop, 1 process"] = run_plain(paths, compose, args.size)
    for w in worker_counts:
        first, second = run_augmine(index, compose, args.size, args.batch, w)
        rows[f"augmine, {w} worker{'s' if w > 1 else ''}"] = second
        rows[f"augmine, {w} worker{'s' if w > 1 else ''}, 1st epoch"] = first
    s = args.small_size
    rows[f"{s} px: plain loop, 1 process"] = run_plain(paths, small, s)
    rows[f"{s} px: plain loop, presized"] = run_plain(paths, small, s, presize=True)
    rows[f"{s} px: augmine, {cores} workers"] = run_augmine(index, small, s, args.batch, cores)[1]
    rows[f"{s} px: augmine, {cores} workers, presize"] = run_augmine(
        index, small, s, args.batch, cores, presize=True)[1]
    rows[f"{s} px: augmine, {cores} workers, presize+cache"] = run_augmine(
        index, small, s, args.batch, cores, presize=True, cache="memory")[1]
    if with_tf:
        rows["tf.numpy_function per image, AUTOTUNE"] = run_numpy_function(
            paths, labels, compose, args.size, args.batch)
        rows["tf.image + Keras random layers, batches"] = run_keras_layers(
            paths, labels, args.size, args.batch)
    desc = (f"{len(paths)} images ({distinct} distinct) from {data}, {args.size} px, batch "
            f"{args.batch}, recipe {recipe_name} ({len(compose.transforms)} transforms)")
    return rows, desc, paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, action="append",
                    help="dataset folder (Tiny-ImageNet layout); repeat for more datasets")
    ap.add_argument("--images", type=int, default=0,
                    help="train images per dataset, cycled or cut (default 0: all of them)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--small-size", type=int, default=16, help="the small phase's size (16)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--skip-tf", action="store_true", help="no tf.data comparisons")
    args = ap.parse_args(argv)

    import cv2

    from augmine.dataset import load_images
    from augmine.pipeline import default_workers

    cv2.setNumThreads(0)   # as in the workers; OpenCV's thread pool slows 64 px images
    cores = default_workers()
    load = os.getloadavg()
    print(f"{cores} cores; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results, names = [], []
    for k, data in enumerate(args.data):
        rows, desc, paths = bench_dataset(data, args, cores, with_tf=not args.skip_tf and k == 0)
        print(f"[{k + 1}] {desc}")
        results.append(rows)
        names.append(f"[{k + 1}] {Path(data).name}"[:22])

    all_rows = list(dict.fromkeys(r for rows in results for r in rows))
    head = f"{'images/s (cores busy)':44s}" + "".join(f" {n:>22s}" for n in names)
    print("\n" + head + "\n" + "-" * len(head))
    for r in all_rows:
        cells = [f"{rows[r].rate:8.0f} ({rows[r].cores:4.2f})" if r in rows else "-"
                 for rows in results]
        print(f"{r:44s}" + "".join(f" {c:>22s}" for c in cells))
    print()
    s = args.small_size
    for label, fn in [
        (f"augmine {cores} workers / ({cores} x plain) [target >= 90%]",
         lambda rows: rows[f"augmine, {cores} worker{'s' if cores > 1 else ''}"].rate
         / (cores * rows["plain loop, 1 process"].rate)),
        ("scaling 1 -> all workers", lambda rows: rows[
            f"augmine, {cores} worker{'s' if cores > 1 else ''}"].rate
         / rows["augmine, 1 worker"].rate),
        ("  same, per CPU-second (load-independent)",
         lambda rows: (rows[f"augmine, {cores} worker{'s' if cores > 1 else ''}"].rate
                       / rows[f"augmine, {cores} worker{'s' if cores > 1 else ''}"].cores)
         / (rows["plain loop, 1 process"].rate / rows["plain loop, 1 process"].cores)),
        (f"{s} px: presize+cache speed-up over augmine",
         lambda rows: rows[f"{s} px: augmine, {cores} workers, presize+cache"].rate
         / rows[f"{s} px: augmine, {cores} workers"].rate),
        (f"{s} px: augmine presize / ({cores} x presized plain)",
         lambda rows: rows[f"{s} px: augmine, {cores} workers, presize"].rate
         / (cores * rows[f"{s} px: plain loop, presized"].rate)),
    ]:
        print(f"{label:52s}" + "".join(f" {fn(rows):10.0%}" if "scaling" not in label
                                         and "speed-up" not in label else f" {fn(rows):9.2f}x"
                                         for rows in results))

    compose, _ = make_compose(args.size)
    imgs = load_images(paths[:400])
    print(f"\ncost per image of each transform (p forced to 1; {len(imgs)} images of the last "
          f"dataset, {imgs[0].shape[1]}x{imgs[0].shape[0]} input)")
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
