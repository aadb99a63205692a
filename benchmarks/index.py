"""Benchmark: index a full-size Tiny-ImageNet tree (200 classes, 100,000 train + 10,000 val).

Builds the tree in a temporary folder with the real layout and file names (each image a
copy of one small generated JPEG, since indexing never decodes), then times
``load_index`` (listing + annotation parsing) and, on a subset, ``verify_index``
(full decode). Not a test: run ``python benchmarks/index.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from augmine.data.dataset import load_index, verify_index
from augmine.data.synth import write_synthetic_dataset


def build_tree(root: Path, classes: int, train: int, val: int) -> None:
    src = Path(tempfile.mkdtemp())
    info = write_synthetic_dataset(src / "d", num_classes=2, train_per_class=1, val_per_class=1)
    jpeg = next((info.root / "val" / "images").iterdir()).read_bytes()
    shutil.rmtree(src)
    wnids = [f"n{i:08d}" for i in range(classes)]
    (root / "wnids.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("".join(f"{w}\tclass {w}\n" for w in wnids)
                                    + "".join(f"x{i:08d}\tother\n" for i in range(82000)))
    for w in wnids:
        img_dir = root / "train" / w / "images"
        img_dir.mkdir(parents=True)
        rows = []
        for i in range(train):
            (img_dir / f"{w}_{i}.JPEG").write_bytes(jpeg)
            rows.append(f"{w}_{i}.JPEG\t1\t2\t50\t60")
        (root / "train" / w / f"{w}_boxes.txt").write_text("\n".join(rows) + "\n")
    val_dir = root / "val" / "images"
    val_dir.mkdir(parents=True)
    rows = []
    for i in range(val * classes):
        (val_dir / f"val_{i}.JPEG").write_bytes(jpeg)
        rows.append(f"val_{i}.JPEG\t{wnids[i % classes]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--classes", type=int, default=200)
    ap.add_argument("--train", type=int, default=500, help="train images per class")
    ap.add_argument("--val", type=int, default=50, help="val images per class")
    ap.add_argument("--verify", type=int, default=10000, help="images to decode in verify")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="augmine-index-bench-"))
    try:
        t = time.perf_counter()
        build_tree(tmp / "tiny", args.classes, args.train, args.val)
        print(f"built {args.classes * (args.train + args.val):,} files in "
              f"{time.perf_counter() - t:.1f} s")
        times = []
        for _ in range(3):
            t = time.perf_counter()
            index = load_index(tmp / "tiny")
            times.append(time.perf_counter() - t)
        n = len(index.train) + len(index.val)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
        print(f"load_index: {n:,} images, {args.classes} classes: best {min(times):.2f} s, "
              f"runs {', '.join(f'{x:.2f}' for x in times)} s (warm file cache)")
        sub = index.train.subset(slice(0, args.verify))
        from dataclasses import replace
        small = replace(index, splits={"train": sub, "val": index.val.subset(slice(0, 0))})
        t = time.perf_counter()
        verify_index(small)
        dt = time.perf_counter() - t
        print(f"verify_index (full decode, {os.cpu_count()} threads): {len(sub):,} images in "
              f"{dt:.2f} s = {len(sub) / dt:,.0f} images/s "
              f"-> about {n / (len(sub) / dt):.0f} s for all {n:,}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
