"""Per-image and per-box measurements: pure functions over arrays and file bytes.

Per image (:func:`image_stats`, RGB uint8): grayscale or not, mean brightness (luma, 0-255),
RMS contrast (luma standard deviation, 0-255), colourfulness (Hasler & Suesstrunk 2003),
colour cast (mean R-G and (R+G)/2-B), sharpness (variance of the Laplacian), noise
(Immerkaer's fast sigma estimate, 0-255); per JPEG file (:func:`jpeg_quality`) the IJG
quality that matches its quantisation table; per box (:func:`box_stats`) area fraction of
the frame, centre, touching the border. :func:`measure_paths` measures many files, in
worker processes for large sets, with OpenCV at one thread while it runs (the previous
setting is restored afterwards).
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from augmine.data.dataset import decode_image
from augmine.core.errors import AugmineError

# Per-image measurements, in column order of the arrays :func:`measure_paths` returns.
COLUMNS = ("height", "width", "grayscale", "brightness", "contrast", "colourfulness",
           "cast_rg", "cast_yb", "sharpness", "noise", "jpeg_quality")
# Below this many images the work runs in-process: starting workers costs more.
PARALLEL_MIN_IMAGES = 4000
_CHUNK = 256

# IJG (libjpeg) standard luminance quantisation table (Annex K of the JPEG standard).
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)


def _ijg_table_sums() -> np.ndarray:
    q = np.arange(1, 101, dtype=np.float64)[:, None]
    scale = np.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    tables = np.clip(np.floor((_IJG_LUMA[None, :] * scale + 50.0) / 100.0), 1, 255)
    return tables.sum(axis=1)


_IJG_SUMS = _ijg_table_sums()

# --------------------------------------------------------------------------- per image

def _luma_quant_table(data: bytes) -> list[int] | None:
    """The 64 values of quantisation table 0 from a JPEG header (None if absent).

    Hand-written DQT scan: Pillow exposes the tables too, but opening a file with it costs
    ~100 us, more than decoding a 64 px JPEG; this walk over the header markers costs ~5 us.
    """
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no more tables
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if marker == 0xDB:
            j, end = i + 4, min(i + 2 + length, n)
            while j < end:
                precision, table_id = data[j] >> 4, data[j] & 0x0F
                size = 128 if precision else 64
                raw = data[j + 1:j + 1 + size]
                if table_id == 0 and len(raw) == size:
                    if precision:
                        return [(raw[k] << 8) | raw[k + 1] for k in range(0, 128, 2)]
                    return list(raw)
                j += 1 + size
        i += 2 + length
    return None


def jpeg_quality(data: bytes) -> float:
    """IJG quality (1-100) whose luminance table matches the JPEG ``data``; NaN if not a JPEG.

    Matching a table to the libjpeg quality formula is hand-written (no library in the stack
    offers it). The match uses the table's sum, so zig-zag order does not matter; files not
    written by libjpeg-style encoders get the nearest equivalent quality.
    """
    if data[:2] != b"\xff\xd8":
        return math.nan
    table = _luma_quant_table(data)
    if table is None:
        return math.nan
    return float(np.argmin(np.abs(_IJG_SUMS - float(sum(table)))) + 1)


def image_stats(img: np.ndarray) -> dict[str, float]:
    """Statistics of one RGB uint8 image (H, W, 3) as a dict keyed like :data:`COLUMNS`
    (without ``jpeg_quality``, which needs the file bytes: :func:`jpeg_quality`)."""
    import cv2

    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    h, w = img.shape[:2]
    img = np.ascontiguousarray(img)
    f = img.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    gray_u8 = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    luma = gray_u8.astype(np.float32)
    # one cv2.meanStdDev call for the three planes (numpy's var is several times slower here)
    mean, std = cv2.meanStdDev(np.dstack([r - g, 0.5 * (r + g) - b, luma]))
    (rg_mean, yb_mean, luma_mean), (rg_sd, yb_sd, luma_sd) = mean.ravel(), std.ravel()
    colourfulness = math.sqrt(rg_sd ** 2 + yb_sd ** 2) + 0.3 * math.sqrt(rg_mean ** 2 + yb_mean ** 2)
    sharp = float(cv2.Laplacian(gray_u8, cv2.CV_64F).var())
    if h > 2 and w > 2:
        # Immerkaer (1996): sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * M|
        kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
        conv = cv2.filter2D(luma, -1, kernel, borderType=cv2.BORDER_CONSTANT)[1:-1, 1:-1]
        noise = math.sqrt(math.pi / 2) * float(np.abs(conv).sum()) / (6.0 * (w - 2) * (h - 2))
    else:
        noise = math.nan
    grayscale = bool(np.array_equal(img[..., 0], img[..., 1])
                     and np.array_equal(img[..., 1], img[..., 2]))
    return {"height": float(h), "width": float(w), "grayscale": float(grayscale),
            "brightness": float(luma_mean), "contrast": float(luma_sd),
            "colourfulness": float(colourfulness), "cast_rg": float(rg_mean),
            "cast_yb": float(yb_mean), "sharpness": sharp, "noise": noise}


def at_size(img: np.ndarray, size: int | None) -> np.ndarray:
    """``img`` resized to ``size`` x ``size`` as the eval feed and a recipe's final resize
    do (INTER_AREA when shrinking, bilinear when growing); ``size`` None: as stored."""
    import cv2

    if not size or img.shape[:2] == (size, size):
        return img
    shrink = img.shape[0] > size or img.shape[1] > size
    return cv2.resize(img, (int(size), int(size)),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def measure_file(path: str, size: int | None = None) -> np.ndarray:
    """(len(COLUMNS),) float64 statistics of the image file ``path``; with ``size`` the
    pixel statistics are taken on the image resized to ``size`` px (what training sees),
    while ``height``/``width`` stay the stored ones (boxes are in stored pixels)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AugmineError(f"{path}: cannot read ({exc.strerror}); check that the file exists")
    img = decode_image(data, str(path))
    stats = image_stats(at_size(img, size))
    stats["height"], stats["width"] = float(img.shape[0]), float(img.shape[1])
    stats["jpeg_quality"] = jpeg_quality(data)
    return np.array([stats[c] for c in COLUMNS], np.float64)


@contextlib.contextmanager
def _opencv_threads(n: int) -> Iterator[None]:
    """OpenCV at ``n`` threads inside the block; the caller's setting comes back afterwards.

    Many tiny images: OpenCV's thread pool costs more than it saves, and the worker
    processes already use every core.
    """
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _measure_chunk(paths: Sequence[str], size: int | None = None) -> np.ndarray:
    if not len(paths):
        return np.zeros((0, len(COLUMNS)))
    with _opencv_threads(1):
        return np.stack([measure_file(p, size) for p in paths])


def measure_paths(paths: Sequence[str], workers: int | None = None, progress: bool = False,
                  desc: str = "measuring", size: int | None = None) -> np.ndarray:
    """(N, len(COLUMNS)) statistics of image files (pixel statistics at ``size`` px, see
    :func:`measure_file`), over ``workers`` processes (default: all cores, in-process below
    PARALLEL_MIN_IMAGES images) with a tqdm progress bar when ``progress``."""
    import functools

    from augmine.core.runtime import progress_bar

    paths = [str(p) for p in paths]
    if workers is None:  # auto: all cores, but in-process when starting workers costs more
        workers = (os.cpu_count() or 1) if len(paths) >= PARALLEL_MIN_IMAGES else 1
    chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    out: list[np.ndarray] = []
    with progress_bar(total=len(paths), desc=desc, unit="img", progress=progress) as bar:
        if workers <= 1 or len(chunks) < 2:
            for chunk in chunks:
                out.append(_measure_chunk(chunk, size))
                bar.update(len(chunk))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # never fork: the caller may have imported TensorFlow
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() \
                else "spawn"
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as ex:
                measure = functools.partial(_measure_chunk, size=size)
                for chunk, res in zip(chunks, ex.map(measure, chunks)):
                    out.append(res)
                    bar.update(len(chunk))
    return np.concatenate(out) if out else np.zeros((0, len(COLUMNS)))


# --------------------------------------------------------------------------- boxes

def box_stats(boxes: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> dict[str, np.ndarray]:
    """Per-box statistics from inclusive pixel boxes ``x0, y0, x1, y1`` (N, 4) (NaN: no box).

    Returns (N,) arrays: ``area`` (fraction of the frame), ``cx``, ``cy`` (centre as a
    fraction of width/height), ``touches`` (1.0 when the box reaches an image edge), NaN
    where there is no box. Tiny-ImageNet boxes are inclusive: 0 0 63 63 is the full frame.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    h = np.asarray(heights, np.float64)
    w = np.asarray(widths, np.float64)
    x0, y0, x1, y1 = boxes.T
    area = (np.clip(x1 - x0 + 1, 0, None) * np.clip(y1 - y0 + 1, 0, None)) / (w * h)
    cx = (x0 + x1 + 1) / 2.0 / w
    cy = (y0 + y1 + 1) / 2.0 / h
    touches = ((x0 <= 0) | (y0 <= 0) | (x1 >= w - 1) | (y1 >= h - 1)).astype(np.float64)
    touches[np.isnan(x0)] = np.nan
    return {"area": area, "cx": cx, "cy": cy, "touches": touches}

