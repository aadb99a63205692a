"""Recipe previews: a PNG grid of originals next to augmented samples, labels drawn in.

Each cell is one original image followed by ``per_image`` augmented versions at the phase
size. Every tile is upscaled by an integer factor with nearest-neighbour interpolation, so
16 and 32 px samples stay readable pixel by pixel (no smoothing hides what the recipe did).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from augmine.core.errors import AugmineError

_BG = (255, 255, 255)
_INK = (20, 20, 20)
_ORIG_INK = (0, 90, 170)


def _ascii(text: str) -> str:
    # cv2's Hershey fonts only draw ASCII
    return text.encode("ascii", "replace").decode("ascii")


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float, colour, width: int,
          thickness: int = 1) -> None:
    """Draw ``text`` with its baseline at ``y``, shortened to fit ``width`` pixels."""
    import cv2

    text = _ascii(text)
    font = cv2.FONT_HERSHEY_SIMPLEX
    while text and cv2.getTextSize(text, font, scale, thickness)[0][0] > width:
        text = text[:-2] + "~" if len(text) > 2 else ""
    cv2.putText(canvas, text, (x, y), font, scale, colour, thickness, cv2.LINE_AA)


def _upscale(img: np.ndarray, tile: int) -> np.ndarray:
    """Nearest-neighbour upscale by the largest integer factor that fits ``tile``, centred."""
    import cv2

    h, w = img.shape[:2]
    f = max(1, min(tile // max(h, 1), tile // max(w, 1)))
    big = cv2.resize(img, (w * f, h * f), interpolation=cv2.INTER_NEAREST) if f > 1 else img
    if big.shape[0] > tile or big.shape[1] > tile:  # larger than a tile: shrink to fit
        s = tile / max(big.shape[:2])
        big = cv2.resize(big, (max(1, int(w * s)), max(1, int(h * s))),
                         interpolation=cv2.INTER_AREA)
    out = np.full((tile, tile, 3), 235, np.uint8)
    y, x = (tile - big.shape[0]) // 2, (tile - big.shape[1]) // 2
    out[y:y + big.shape[0], x:x + big.shape[1]] = big
    return out


def render_grid(originals: Sequence[np.ndarray], augmented: Sequence[Sequence[np.ndarray]],
                captions: Sequence[str], title: str, size: int, tile: int | None = None,
                cells_per_row: int | None = None) -> np.ndarray:
    """Compose the preview image (RGB uint8).

    ``originals``: K images (any size); ``augmented[k]``: the augmented versions of image k
    (each (size, size, 3)); ``captions[k]``: text over original k. ``tile``: pixel size of
    each tile (default: the first multiple of ``size`` >= 128 px, so 16, 32 and 64 px
    samples and 64 px originals all scale by whole factors).
    """
    if not originals:
        raise AugmineError("nothing to preview: no images were chosen")
    tile = tile or size * math.ceil(max(128, size) / size)
    per = 1 + max(len(a) for a in augmented)
    k = len(originals)
    cells_per_row = cells_per_row or max(1, min(k, round(math.sqrt(k * 1.5 / per)) or 1))
    rows = math.ceil(k / cells_per_row)
    gap, cap_h, title_h = 6, 16, 30
    cell_w = per * tile + (per - 1) * 2
    width = cells_per_row * cell_w + (cells_per_row + 1) * gap * 2
    height = title_h + rows * (tile + cap_h + gap) + gap
    canvas = np.full((height, width, 3), _BG, np.uint8)
    _text(canvas, title, gap * 2, 20, 0.5, _INK, width - 4 * gap)
    scale = 0.36
    for i, (orig, augs, cap) in enumerate(zip(originals, augmented, captions)):
        r, c = divmod(i, cells_per_row)
        x0 = gap * 2 + c * (cell_w + gap * 2)
        y0 = title_h + r * (tile + cap_h + gap)
        tiles = [orig] + list(augs)
        for j, img in enumerate(tiles):
            x = x0 + j * (tile + 2)
            canvas[y0 + cap_h:y0 + cap_h + tile, x:x + tile] = _upscale(img, tile)
            label = cap if j == 0 else f"aug {j}"
            _text(canvas, label, x + 1, y0 + cap_h - 4, scale, _ORIG_INK if j == 0 else _INK,
                  tile - 2)
    return canvas


def preview_grid(index, recipe, class_key: str | int | None = None, n: int = 16,
                 size: int = 64, seed: int = 0, per_image: int = 3, split: str = "train",
                 tile: int | None = None) -> np.ndarray:
    """A preview of ``recipe`` on ``n`` augmented samples as an RGB uint8 image.

    ``index``: a DatasetIndex; ``class_key``: human name, class id (wnid) or label of the
    class to show (None: images drawn from all classes); ``n`` augmented samples in total,
    ``per_image`` per original (so ceil(n / per_image) originals); ``seed`` picks the images
    and seeds the augmentation, so the same call draws the same grid. A class the recipe
    overrides (``classes:``) is shown under its own recipe when ``class_key`` names it.
    """
    from augmine.data.dataset import load_images
    from augmine.augment.recipes import as_recipe
    from augmine.augment.compose import build_compose
    from augmine.augment.compose import class_overrides, recipe_for_class

    if n < 1 or per_image < 1:
        raise AugmineError(f"-n {n} / per-image {per_image}: both must be at least 1")
    recipe = as_recipe(recipe)
    sp = index.split(split)
    rng = np.random.default_rng(seed)
    overrides = class_overrides(recipe, index.class_ids, index.class_names)  # each a class here
    if class_key is not None:
        label = index.class_index(class_key)
        override = overrides.get(label)
        recipe = recipe_for_class(recipe, override) if override else recipe
        pool = np.flatnonzero(sp.labels == label)
        if not len(pool):
            raise AugmineError(f"class {index.class_label(label)} has no {split} images in "
                               f"{index.root}; try --split val")
    else:
        pool = np.arange(len(sp))
    k = min(len(pool), math.ceil(n / per_image))
    chosen = rng.choice(pool, size=k, replace=False)
    images = load_images([sp.paths[i] for i in chosen])
    compose = build_compose(recipe, size, seed=seed)
    counts = [per_image] * k
    counts[-1] -= max(0, k * per_image - n)  # n samples in all (fewer if the class is small)
    augmented, captions = [], []
    for i, img, m in zip(chosen, images, counts):
        augmented.append([compose(image=img)["image"] for _ in range(m)])
        name = Path(sp.paths[i]).stem.split("_")[-1]
        name = f"#{name}" if name.isdigit() else Path(sp.paths[i]).stem
        captions.append(name if class_key is not None
                        else index.class_names[sp.labels[i]])
    who = index.class_label(index.class_index(class_key)) if class_key is not None \
        else f"{index.num_classes} classes"
    title = (f"{recipe.name} @ {size} px, seed {seed}: {who}, {split} - original, then "
             f"augmented")
    return render_grid(images, augmented, captions, title, size, tile=tile)


def write_preview(out: str | os.PathLike, grid: np.ndarray) -> Path:
    """Save an RGB grid as PNG atomically; returns the path."""
    import cv2

    from augmine.core.atomic import write_bytes

    ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - PNG encoding of a uint8 array does not fail
        raise AugmineError(f"{out}: could not encode the preview as PNG")
    return write_bytes(out, buf.tobytes())
