"""A generated dataset in the exact Tiny-ImageNet layout: augmine's embedded default.

Each class is a procedurally drawn object (shape, colour, texture) on a noisy, coloured
background, at a random place, scale and angle, saved as a 64x64 JPEG of varying
quality; about 2% of the images are grayscale, as in Tiny-ImageNet. Some class pairs
are *planted confusable pairs*: same shape and colour, told apart only by a fine texture
(stripes vs dots, 3-4 px period) that disappears when the image is shrunk to 16 px, so
confusion analysis and hard-class mining have something real to find. The pairs are
written to ``synth.json`` beside ``wnids.txt``.

The output is deterministic for a given seed and size: the same files, byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from augmine.core import atomic
from augmine.core.errors import AugmineError

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "hexagon", "diamond")
COLOURS = {  # name -> RGB
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (230, 200, 30), "purple": (150, 50, 190), "orange": (240, 130, 20),
    "cyan": (30, 190, 200), "pink": (240, 110, 170), "brown": (130, 80, 40),
    "white": (235, 235, 235), "black": (25, 25, 25), "olive": (120, 130, 30),
}
TEXTURES = ("plain", "striped", "dotted")
SYNTH_VERSION = 1


@dataclass(frozen=True)
class SynthClass:
    wnid: str
    shape: str
    colour: str
    texture: str

    @property
    def name(self) -> str:
        return f"{self.texture} {self.colour} {self.shape}" if self.texture != "plain" \
            else f"{self.colour} {self.shape}"


def synth_classes(num_classes: int, num_pairs: int | None = None) -> list[SynthClass]:
    """The class list: the first ``2 * num_pairs`` classes form the confusable pairs."""
    if num_classes < 2:
        raise AugmineError(f"--classes {num_classes}: a dataset needs at least 2 classes")
    if num_pairs is None:
        num_pairs = max(1, num_classes // 5)
    num_pairs = min(num_pairs, num_classes // 2)
    colours = list(COLOURS)
    # every (shape, colour) once; neighbouring classes differ in both shape and colour
    combos = [(SHAPES[i % len(SHAPES)], colours[(i + 5 * (i // len(SHAPES))) % len(colours)])
              for i in range(len(SHAPES) * len(colours))]
    if num_classes - num_pairs > len(combos):
        raise AugmineError(f"--classes {num_classes}: at most "
                           f"{len(combos) + num_pairs} classes can be generated")
    classes = []
    for p in range(num_pairs):
        shape, colour = combos[p]
        classes.append(SynthClass(f"s{len(classes):07d}", shape, colour, "striped"))
        classes.append(SynthClass(f"s{len(classes):07d}", shape, colour, "dotted"))
    for shape, colour in combos[num_pairs:num_pairs + num_classes - 2 * num_pairs]:
        classes.append(SynthClass(f"s{len(classes):07d}", shape, colour, "plain"))
    return classes


def _shape_mask(shape: str, size: int, rng: np.random.Generator):
    """Draw ``shape`` into a (size, size) uint8 mask; return it and its box x0, y0, x1, y1."""
    import cv2

    mask = np.zeros((size, size), np.uint8)
    scale = rng.uniform(0.28, 0.46) * size          # radius-like half extent
    cx = rng.uniform(scale * 0.6, size - scale * 0.6)
    cy = rng.uniform(scale * 0.6, size - scale * 0.6)
    angle = rng.uniform(0, 2 * np.pi)

    def polygon(n, radii):
        t = angle + np.arange(n) * 2 * np.pi / n
        pts = np.stack([cx + radii * np.cos(t), cy + radii * np.sin(t)], 1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255, lineType=cv2.LINE_AA)

    if shape == "circle":
        cv2.circle(mask, (int(cx), int(cy)), int(scale), 255, -1, cv2.LINE_AA)
    elif shape == "ring":
        cv2.circle(mask, (int(cx), int(cy)), int(scale), 255, max(2, int(scale * 0.45)),
                   cv2.LINE_AA)
    elif shape == "square":
        polygon(4, np.full(4, scale * 1.1))
    elif shape == "diamond":
        polygon(4, np.array([1.2, 0.7, 1.2, 0.7]) * scale)
    elif shape == "triangle":
        polygon(3, np.full(3, scale * 1.15))
    elif shape == "hexagon":
        polygon(6, np.full(6, scale))
    elif shape == "star":
        polygon(10, np.tile([scale * 1.15, scale * 0.5], 5))
    elif shape == "cross":
        w = max(2, int(scale * 0.45))
        rot = cv2.getRotationMatrix2D((cx, cy), np.degrees(angle), 1.0)
        bar = np.zeros_like(mask)
        cv2.rectangle(bar, (int(cx - scale), int(cy - w / 2)), (int(cx + scale), int(cy + w / 2)),
                      255, -1)
        cv2.rectangle(bar, (int(cx - w / 2), int(cy - scale)), (int(cx + w / 2), int(cy + scale)),
                      255, -1)
        mask = cv2.warpAffine(bar, rot, (size, size))
    else:  # pragma: no cover - SHAPES is closed
        raise ValueError(shape)
    ys, xs = np.nonzero(mask > 127)
    box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())) if len(xs) else \
        (0, 0, size - 1, size - 1)
    return mask, box


def _texture(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) float map in [0, 1] of the fine texture that tells pair classes apart."""
    if kind == "plain":
        return np.zeros((size, size), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(3.0, 4.0)
    theta = rng.uniform(0, np.pi)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    if kind == "striped":
        return (np.sin(2 * np.pi * u / period) > 0).astype(np.float32)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    return ((np.sin(2 * np.pi * u / period) > 0.3) & (np.sin(2 * np.pi * v / period) > 0.3)
            ).astype(np.float32)


def render_image(cls: SynthClass, rng: np.random.Generator, size: int = 64):
    """One RGB uint8 image (size, size, 3) of class ``cls`` and its object box."""
    import cv2

    # background: a smooth two-colour gradient plus noise
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, size, dtype=np.float32)
    grad = t[None, :] if rng.random() < 0.5 else t[:, None]
    bg = c0 + (c1 - c0) * grad[..., None]
    bg = bg + rng.normal(0, 18, (size, size, 3))
    mask, box = _shape_mask(cls.shape, size, rng)
    alpha = mask.astype(np.float32)[..., None] / 255.0
    colour = np.array(COLOURS[cls.colour], np.float32) * rng.uniform(0.75, 1.15)
    fg = np.broadcast_to(colour, (size, size, 3)).astype(np.float32)
    tex = _texture(cls.texture, size, rng)[..., None]
    fg = fg * (1 - 0.55 * tex) + 0.55 * tex * (255 - colour) * 0.3
    img = bg * (1 - alpha) + fg * alpha
    img = img * rng.uniform(0.7, 1.25) + rng.uniform(-25, 25)      # exposure
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 0.8))
    return img, box


@dataclass(frozen=True)
class SynthInfo:
    root: Path
    classes: list[SynthClass]
    confusable_pairs: list[tuple[str, str]]   # pairs of human names


def write_synthetic_dataset(dest: str | os.PathLike, num_classes: int = 10,
                            train_per_class: int = 200, val_per_class: int = 50,
                            seed: int = 0, size: int = 64, num_pairs: int | None = None,
                            grayscale_share: float = 0.02, progress: bool = False) -> SynthInfo:
    """Write a generated dataset in the Tiny-ImageNet layout to ``dest`` (must be empty or absent).

    Layout: ``wnids.txt``, ``words.txt``, ``train/<wnid>/images/<wnid>_<i>.JPEG``,
    ``train/<wnid>/<wnid>_boxes.txt``, ``val/images/val_<i>.JPEG``,
    ``val/val_annotations.txt``, plus ``synth.json`` naming the confusable pairs.
    """
    import cv2

    from augmine.core.runtime import progress_bar

    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise AugmineError(f"{dest} is not empty; choose a new folder for the generated dataset")
    if min(train_per_class, val_per_class) < 1:
        raise AugmineError("each class needs at least 1 train and 1 val image")
    classes = synth_classes(num_classes, num_pairs)
    pairs = [(classes[i].name, classes[i + 1].name) for i in range(0, len(classes) - 1, 2)
             if classes[i].texture == "striped"]
    root_seq = np.random.SeedSequence(seed)
    class_seqs = root_seq.spawn(len(classes))
    total = len(classes) * (train_per_class + val_per_class)
    bar = progress_bar(total=total, progress=progress, desc="generating", unit="img")

    def save(path: Path, img: np.ndarray, rng: np.random.Generator) -> None:
        if rng.random() < grayscale_share:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)     # 1-channel JPEG, as in Tiny-ImageNet
        elif img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        quality = int(rng.integers(60, 96))
        ok, buf = cv2.imencode(".JPEG", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        path.write_bytes(buf.tobytes())
        bar.update()

    dest.mkdir(parents=True, exist_ok=True)
    val_rows = []
    val_dir = dest / "val" / "images"
    val_dir.mkdir(parents=True)
    val_jobs = []
    for cls, seq in zip(classes, class_seqs):
        rng = np.random.default_rng(seq)
        img_dir = dest / "train" / cls.wnid / "images"
        img_dir.mkdir(parents=True)
        rows = []
        for i in range(train_per_class):
            img, box = render_image(cls, rng, size)
            name = f"{cls.wnid}_{i}.JPEG"
            save(img_dir / name, img, rng)
            rows.append(f"{name}\t" + "\t".join(map(str, box)))
        (dest / "train" / cls.wnid / f"{cls.wnid}_boxes.txt").write_text("\n".join(rows) + "\n")
        for _ in range(val_per_class):
            val_jobs.append((cls, *render_image(cls, rng, size), rng.integers(2**31)))
    # val images are shuffled across classes, as in Tiny-ImageNet
    order = np.random.default_rng(root_seq.spawn(1)[0]).permutation(len(val_jobs))
    for n, j in enumerate(order):
        cls, img, box, s = val_jobs[j]
        name = f"val_{n}.JPEG"
        save(val_dir / name, img, np.random.default_rng(s))
        val_rows.append(f"{name}\t{cls.wnid}\t" + "\t".join(map(str, box)))
    bar.close()
    (dest / "val" / "val_annotations.txt").write_text("\n".join(val_rows) + "\n")
    (dest / "wnids.txt").write_text("".join(f"{c.wnid}\n" for c in classes))
    # words.txt lists more ids than the dataset uses, like the real one
    words = [f"{c.wnid}\t{c.name}" for c in classes] + [f"x{i:07d}\tunused class {i}"
                                                           for i in range(5)]
    (dest / "words.txt").write_text("\n".join(words) + "\n")
    meta = {"generator": "augmine.data.synth", "version": SYNTH_VERSION, "seed": seed, "size": size,
            "classes": [c.__dict__ | {"name": c.name} for c in classes],
            "confusable_pairs": [list(p) for p in pairs]}
    atomic.write_json(dest / "synth.json", meta)
    return SynthInfo(dest, classes, pairs)


def confusable_pairs(root: str | os.PathLike) -> list[tuple[str, str]]:
    """The planted confusable pairs (human names) of a generated dataset; [] for other data."""
    meta = Path(root) / "synth.json"
    if not meta.exists():
        return []
    return [tuple(p) for p in json.loads(meta.read_text())["confusable_pairs"]]


def default_dataset_dir() -> Path:
    """Where the embedded default dataset lives: ``$AUGMINE_HOME/synth-v1`` (default ``~/.cache/augmine``)."""
    home = Path(os.environ.get("AUGMINE_HOME", Path.home() / ".cache" / "augmine"))
    return home / f"synth-v{SYNTH_VERSION}"


def ensure_default_dataset(progress: bool = False) -> Path:
    """Generate the default dataset once (10 classes, 200 train + 50 val each) and return its path.

    Generation writes to a temporary folder that is renamed into place when complete, so
    an interrupted first run never leaves a half-written default behind.
    """
    target = default_dataset_dir()
    if (target / "synth.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".synth-", dir=target.parent))
    try:
        write_synthetic_dataset(tmp / "data", progress=progress)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / "data", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
