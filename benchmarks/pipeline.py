"""Input-pipeline throughput: augmine's worker processes vs the plain loop and tf.data patterns.

    python benchmarks/pipeline.py --data PATH [--data PATH2 ...] [--images N] [--size 64]
                                  [--small-size 16] [--batch 256] [--skip-tf] [--repeats 5]

For each dataset (its train split; ``--images`` cycles or cuts it to N images, default all)
and the same recipe (``recipes/tiny-imagenet-14.yaml``), prints images/s and cores busy (CPU
time of this process and all its descendants / wall time) for:

- one Python process, plain loop (decode + recipe): the single-core reference, run in a
  fresh process (this long-lived one ran the same loop 4-21% slower);
- augmine's feed (``augmine.feed.feeds.train_dataset``, uint8 tf.data batches) with 1, 2 and
  all workers: the second epoch (persistent workers, the steady state training sees) and the
  first (which includes starting the workers). An epoch's time runs from its start until the
  workers go idle after it, since they make the next epoch's first batches in its tail;
- the small phase (``--small-size``, default 16 px): the plain loop, augmine as is, and
  augmine with ``presize=True`` (each image shrunk to 16 px once, before the recipe) without
  and with the decoded-image cache;
- first dataset only, unless ``--skip-tf``, after everything else: tf.data +
  ``tf.numpy_function`` per image with AUTOTUNE (the usual pattern) and tf.image ops + Keras
  random layers on batches;

then the target: ``--repeats`` rounds (default 5), each the plain loop in one fresh process,
the plain loop in one fresh process per core at once (what the machine itself reaches with
every core busy), then one steady-state epoch of augmine with all workers, interleaved so
the three see the same load (this shared machine's speed drifts by +-10% within a minute);
it prints the median and range of augmine / (cores x plain), the ideal (target >= 90%), of
the same per CPU-second (images per second of CPU time of every process involved), and of
the machine's own scaling (cores plain processes at once / (cores x plain)). Then the single
measurements' ratios side by side, and the cost per image of each recipe transform (p=1).
Timings end before an iterator is destroyed: with tf.data's autotuning on (the tf.data
patterns here), dropping a finished iterator can wait seconds for the autotune thread
(``benchmarks/iterator_replace.py``; augmine's own feeds turn autotuning off).
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

# the 14 transforms of DESIGN.md, used when recipes/tiny-imagenet-14.yaml is absent
FALLBACK_14 = [
    ("RandomResizedCrop", dict(scale=(0.35, 1.0))), ("HorizontalFlip", {}),
    ("Affine", dict(rotate=(-15, 15), scale=(0.9, 1.1))), ("RandomBrightnessContrast", {}),
    ("HueSaturationValue", {}), ("RGBShift", {}), ("ToGray", {}), ("CLAHE", {}),
    ("GaussianBlur", dict(blur_limit=(3, 5))), ("Sharpen", {}),
    ("GaussNoise", dict(std_range=(0.02, 0.08))), ("Perspective", dict(scale=(0.02, 0.06))),
    ("ImageCompression", dict(quality_range=(50, 95))), ("CoarseDropout", {}),
]
_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid) -> tuple[int, int, int]:
    """``(parent pid, own CPU ticks, reaped children's CPU ticks)`` of ``pid`` (/proc)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14])


def descendants() -> list[int]:
    """PIDs of every live descendant of this process (the fork server, the workers)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = _stat(entry)[0]
            except OSError:
                continue
    found, frontier = [], [os.getpid()]
    while frontier:
        p = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == p:
                found.append(pid)
                frontier.append(pid)
    return found


def cpu_seconds(pids=None, own: bool = True) -> float:
    """CPU time of this process (``own``), its reaped children and ``pids`` (default: every
    live descendant)."""
    _, mine, reaped = _stat(os.getpid())
    total = reaped + (mine if own else 0)
    for pid in descendants() if pids is None else pids:
        try:
            _, ticks, gone = _stat(pid)
            total += ticks + gone
        except OSError:
            continue
    return total / _TICK


def wait_idle(quiet: float = 0.15, poll: float = 0.01) -> float:
    """Wait until this process's descendants (the pipeline workers) have used no CPU for
    ``quiet`` s; returns the ``time.perf_counter()`` at which they were last seen busy.

    The feed has its workers make the next epoch's first batches once an epoch's last
    tasks are out: that work belongs to the epoch being measured (the next one starts with
    it done), so an epoch's time runs until the workers go idle, not to its last batch.
    """
    pids = descendants()
    last, busy_at = cpu_seconds(pids, own=False), time.perf_counter()
    while time.perf_counter() - busy_at < quiet:
        time.sleep(poll)
        now = cpu_seconds(pids, own=False)
        if now != last:
            last, busy_at = now, time.perf_counter()
    return busy_at


class Meter:
    def __enter__(self):
        self.t, self.c = time.perf_counter(), cpu_seconds()
        return self

    def stop(self, images: int, end: float | None = None):
        """Call at the last batch (before teardown); ``end``: a ``perf_counter`` time at
        which the work ended, if earlier than now."""
        self.wall = (time.perf_counter() if end is None else end) - self.t
        self.cores = (cpu_seconds() - self.c) / self.wall
        self.rate = images / self.wall

    def __exit__(self, *exc):
        return False


def make_compose(size: int):
    import albumentations as A

    from augmine.core.runtime import available_recipes

    if "tiny-imagenet-14" in available_recipes():
        from augmine.augment.compose import build_compose

        return build_compose("tiny-imagenet-14", size), "tiny-imagenet-14.yaml"
    ts = [getattr(A, name)(**({"size": (size, size)} if name == "RandomResizedCrop" else {}), **kw)
          for name, kw in FALLBACK_14]
    return A.Compose(ts), "DESIGN.md 14-transform list (fallback)"


def run_augmine(index, compose, size, batch, workers, epochs=2, **kwargs):
    """Meters of ``epochs`` consecutive epochs of one train_dataset (workers persist); each
    epoch ends when its workers go idle (:func:`wait_idle`)."""
    from augmine.feed.feeds import close_feed, train_dataset

    ds = train_dataset(index, compose, size, batch, seed=0, workers=workers, **kwargs)
    meters = [measure_epoch(ds) for _ in range(epochs)]
    close_feed(ds)
    return meters


def measure_epoch(ds):
    """Meter of one epoch of ``ds``, from its start to when the workers go idle after it."""
    n = 0
    with Meter() as m:
        it = iter(ds)
        for _, y in it:
            n += len(y)
        m.stop(n, end=wait_idle())
    del it
    return m


def run_rounds(data, images, index, compose, size, batch, workers, repeats):
    """``repeats`` rounds of (the plain loop in one fresh process, the plain loop in
    ``workers`` fresh processes at once, one steady-state epoch of augmine with ``workers``),
    interleaved so that the three see the same load on the machine. Returns the list of
    ``(plain, plain x workers, augmine)`` meters."""
    from augmine.feed.feeds import close_feed, train_dataset

    ds = train_dataset(index, compose, size, batch, seed=0, workers=workers)
    measure_epoch(ds)                     # epoch 0 starts the workers; not counted
    rounds = [(run_plain_fresh(data, images, size),
               run_plain_fresh(data, images, size, processes=workers), measure_epoch(ds))
              for _ in range(repeats)]
    close_feed(ds)
    return rounds


def run_plain(paths, compose, size, presize=False):
    """Meter of the plain loop (read, recipe, store) over ``paths`` in this process."""
    from augmine.data.dataset import read_image
    from augmine.feed.batches import presized

    with Meter() as m:
        out = np.empty((len(paths), size, size, 3), np.uint8)
        for i, p in enumerate(paths):
            img = read_image(p)
            out[i] = compose(image=presized(img, size) if presize else img)["image"]
        m.stop(len(paths))
    return m


def run_plain_fresh(data, images, size, presize=False, processes=1):
    """Meter of the plain loop over ``load_subset(data, images)`` in ``processes`` fresh
    Python processes started together (after a warm-up pass over 300 images each); rates and
    cores busy are summed. One process is the single-process reference (measured here, the
    same loop in this long-lived benchmark process ran 4-21% slower than in a fresh one,
    which would flatter the workers); one per core is what the machine itself reaches with
    every core busy and nothing shared."""
    import json
    import subprocess
    from types import SimpleNamespace

    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import benchmarks.pipeline as b; "
            "print(json.dumps(b.plain_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), "
            "sys.argv[5] == '1')))")
    root = str(Path(__file__).resolve().parents[1])
    procs = [subprocess.Popen([sys.executable, "-c", code, root, str(data), str(images),
                               str(size), "1" if presize else "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for _ in range(processes)]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"plain loop process failed (exit code {proc.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return SimpleNamespace(rate=sum(r["rate"] for r in results),
                           cores=sum(r["cores"] for r in results),
                           wall=max(r["wall"] for r in results))


def plain_child(data, images, size, presize):
    """What :func:`run_plain_fresh` runs in its process: ``{rate, cores, wall}``."""
    import cv2

    cv2.setNumThreads(0)
    index, _ = load_subset(data, images)
    paths = [str(p) for p in index.train.paths]
    compose, _ = make_compose(size)
    run_plain(paths[:300], compose, size, presize)
    m = run_plain(paths, compose, size, presize)
    return {"rate": m.rate, "cores": m.cores, "wall": m.wall}


def run_numpy_function(paths, labels, compose, size, batch):
    from augmine.core.runtime import import_tensorflow

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
    from augmine.core.runtime import import_tensorflow

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
    from augmine.data.dataset import Split
    from augmine.data.dataset import load_index

    index = load_index(data)
    tr = index.train
    take = np.resize(np.arange(len(tr)), images) if images else np.arange(len(tr))
    sub = Split("train", tr.paths[take], tr.labels[take], tr.boxes[take])
    return replace(index, splits={**index.splits, "train": sub}), len(tr)


def bench_dataset(data, args, cores):
    """augmine's measurements on one dataset: ``{row name: Meter}``, the target's rounds
    (:func:`run_rounds`), a description line and the paths."""
    from augmine.data.dataset import Split

    index, distinct = load_subset(data, args.images)
    sub = index.train
    paths = [str(p) for p in sub.paths]
    compose, recipe_name = make_compose(args.size)
    small, _ = make_compose(args.small_size)
    warm = replace(index, splits={"train": Split("train", sub.paths[:64], sub.labels[:64],
                                                 sub.boxes[:64])})
    run_augmine(warm, compose, args.size, 32, 1, epochs=1)        # start the fork server once
    for p in dict.fromkeys(paths):          # files into the page cache: no row pays the disk
        Path(p).read_bytes()
    rows = {}
    worker_counts = sorted({1, 2, cores})
    rows["plain loop, 1 process"] = run_plain_fresh(data, args.images, args.size)
    for w in worker_counts:
        first, second = run_augmine(index, compose, args.size, args.batch, w)
        rows[f"augmine, {w} worker{'s' if w > 1 else ''}"] = second
        rows[f"augmine, {w} worker{'s' if w > 1 else ''}, 1st epoch"] = first
    s = args.small_size
    rows[f"{s} px: plain loop, 1 process"] = run_plain_fresh(data, args.images, s)
    rows[f"{s} px: plain loop, presized"] = run_plain_fresh(data, args.images, s, presize=True)
    rows[f"{s} px: augmine, {cores} workers"] = run_augmine(index, small, s, args.batch, cores)[1]
    rows[f"{s} px: augmine, {cores} workers, presize"] = run_augmine(
        index, small, s, args.batch, cores, presize=True)[1]
    rows[f"{s} px: augmine, {cores} workers, presize+cache"] = run_augmine(
        index, small, s, args.batch, cores, presize=True, cache="memory")[1]
    rounds = run_rounds(data, args.images, index, compose, args.size, args.batch, cores,
                       args.repeats)
    desc = (f"{len(paths)} images ({distinct} distinct) from {data}, {args.size} px, batch "
            f"{args.batch}, recipe {recipe_name} ({len(compose.transforms)} transforms)")
    return rows, rounds, desc, paths


def _spread(values) -> str:
    """``median [min-max]`` of ratios, as percentages."""
    v = np.sort(np.asarray(values))
    return f"{np.median(v):4.0%} [{v[0]:.0%}-{v[-1]:.0%}]"


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
    ap.add_argument("--repeats", type=int, default=5,
                    help="interleaved rounds (plain loop, plain loop per core, augmine epoch) "
                         "for the target (5)")
    args = ap.parse_args(argv)

    import cv2

    from augmine.data.dataset import load_images
    from augmine.feed.workers import default_workers

    cv2.setNumThreads(0)   # as in the workers; OpenCV's thread pool slows 64 px images
    cores = default_workers()
    load = os.getloadavg()
    print(f"{cores} cores; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results, all_rounds, names = [], [], []
    for k, data in enumerate(args.data):
        rows, rounds, desc, paths = bench_dataset(data, args, cores)
        print(f"[{k + 1}] {desc}")
        results.append(rows)
        all_rounds.append(rounds)
        names.append(f"[{k + 1}] {Path(data).name}"[:22])
    if not args.skip_tf:    # last: nothing TensorFlow leaves running can touch the rows above
        index, _ = load_subset(args.data[0], args.images)
        tf_paths = [str(p) for p in index.train.paths]
        labels = index.train.labels.astype(np.int32)
        compose, _ = make_compose(args.size)
        results[0]["tf.numpy_function per image, AUTOTUNE"] = run_numpy_function(
            tf_paths, labels, compose, args.size, args.batch)
        results[0]["tf.image + Keras random layers, batches"] = run_keras_layers(
            tf_paths, labels, args.size, args.batch)

    all_rows = list(dict.fromkeys(r for rows in results for r in rows))
    head = f"{'images/s (cores busy)':44s}" + "".join(f" {n:>22s}" for n in names)
    print("\n" + head + "\n" + "-" * len(head))
    for r in all_rows:
        cells = [f"{rows[r].rate:8.0f} ({rows[r].cores:4.2f})" if r in rows else "-"
                 for rows in results]
        print(f"{r:44s}" + "".join(f" {c:>22s}" for c in cells))
    print(f"\nthe target, from {args.repeats} interleaved rounds per dataset (the plain loop in one "
          f"process, in {cores} processes at once, then one steady-state epoch of augmine with "
          f"{cores} workers): median [min-max]")
    for label, fn in [
        (f"augmine {cores} workers / ({cores} x plain) [target >= 90%]",
         lambda p, pn, a: a.rate / (cores * p.rate)),
        ("  same, per CPU-second (load-independent)",
         lambda p, pn, a: (a.rate / a.cores) / (p.rate / p.cores)),
        ("  cores busy during the augmine epoch / cores", lambda p, pn, a: a.cores / cores),
        (f"{cores} plain processes at once / ({cores} x plain)", lambda p, pn, a: pn.rate
         / (cores * p.rate)),
        (f"augmine / {cores} plain processes at once", lambda p, pn, a: a.rate / pn.rate),
    ]:
        print(f"{label:52s}" + "".join(f" {_spread([fn(*r) for r in rounds]):>18s}"
                                         for rounds in all_rounds))
    print("\nsingle measurements (the table above, each row once):")
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
