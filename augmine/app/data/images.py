"""The pictures the app shows, as arrays and PNG bytes: enlarged with nearest neighbour,
framed, padded, augmented samples and clean|augmented strips; and where a recorded image
file is now (a moved dataset)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from augmine.core.errors import AugmineError

DISPLAY_PX = 128          # augmented samples are shown at least this many pixels wide
RED = (220, 30, 30)
GREEN = (30, 160, 60)


def upscale_nearest(img: np.ndarray, min_side: int = DISPLAY_PX) -> np.ndarray:
    """Enlarge an (H, W, 3) uint8 image by an integer factor with nearest neighbour.

    The factor is the smallest integer that makes the longer side at least ``min_side``
    (1 when it already is), so pixels stay square and sharp instead of the browser's
    blurry smoothing of a 16 px image.
    """
    import cv2

    h, w = img.shape[:2]
    factor = max(1, math.ceil(min_side / max(h, w, 1)))
    if factor == 1:
        return img
    return cv2.resize(img, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST)


def with_border(img: np.ndarray, colour: Sequence[int] = RED, width: int = 4) -> np.ndarray:
    """A copy of ``img`` (H, W, 3) framed by a ``width`` px line in ``colour`` drawn inside
    its edge (the size stays the same, so the browser does not rescale it)."""
    import cv2

    h, w = img.shape[:2]
    out = np.ascontiguousarray(img).copy()
    # cv2 centres the line on the rectangle: twice the width puts ``width`` px inside
    cv2.rectangle(out, (0, 0), (w - 1, h - 1), tuple(int(c) for c in colour), 2 * width)
    return out


def pad(img: np.ndarray, px: int = 3, colour: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """``img`` (H, W, 3) with a ``px`` wide margin of ``colour`` on every side (grid spacing)."""
    import cv2

    return cv2.copyMakeBorder(img, px, px, px, px, cv2.BORDER_CONSTANT,
                              value=tuple(int(c) for c in colour))


def png_bytes(img: np.ndarray) -> bytes:
    """Encode an RGB uint8 image as PNG (fast, lossless: sharp pixels for the browser)."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - only for unsupported arrays
        raise AugmineError(f"cannot encode an image of shape {img.shape} as PNG")
    return buf.tobytes()


def augment_samples(image: np.ndarray, recipe, size: int, n: int, seed: int) -> list[np.ndarray]:
    """``n`` augmented versions (each (size, size, 3) uint8) of ``image`` under ``recipe``.

    ``recipe``: a Recipe, recipe path or name (see :func:`augmine.augment.compose.build_compose`).
    The same ``seed`` gives the same samples.
    """
    from augmine.augment.compose import build_compose

    compose = build_compose(recipe, size, seed=int(seed))
    return [compose(image=image)["image"] for _ in range(int(n))]


def clean_and_augmented(image: np.ndarray, recipe, size: int, seed: int) -> np.ndarray:
    """One (size, 2*size + 3, 3) uint8 strip: ``image`` at ``size`` px as the model saw it
    clean (left) and augmented by ``recipe`` (right, seeded), a white gap between."""
    from augmine.augment.recipes import Recipe
    from augmine.augment.compose import build_compose

    clean = build_compose(Recipe("clean", "", None, []), size)(image=image)["image"]
    aug = build_compose(recipe, size, seed=int(seed))(image=image)["image"]
    gap = np.full((size, 3, 3), 255, np.uint8)
    return np.concatenate([clean, gap, aug], axis=1)


def resolve_image_path(path: str, data_root: str | os.PathLike | None) -> str | None:
    """``path`` when it exists; else the same file under ``data_root`` (a moved dataset); else None.

    Tries the path's last 2 and 3 components (``val/images/x.JPEG``,
    ``val/<class>/x.jpg``, ``train/<wnid>/images/x.JPEG``) below ``data_root``.
    """
    if os.path.exists(path):
        return path
    if data_root:
        parts = Path(path).parts
        for k in (3, 4, 2):
            cand = Path(data_root, *parts[-k:])
            if len(parts) >= k and cand.exists():
                return str(cand)
    return None
