"""Dataset folders -> a :class:`DatasetIndex` of paths, labels and boxes per split, with its
class ids and human names: the folder layouts, decoding image files and finding the bad
ones, and the checks made on an index (classes, trainability).

Reading a folder into an index is :func:`load_index`; decoding images is
:func:`decode_image`, finding bad ones :func:`check_images`. Everything a user can get
wrong raises :class:`~augmine.core.errors.AugmineError` with one line naming the file, the
place and the fix.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from augmine.core.errors import AugmineError
from augmine.core.naming import did_you_mean


log = logging.getLogger("augmine")

SPLITS = ("train", "val")


@dataclass(frozen=True)
class BadFile:
    """An image that cannot be used: ``path`` and the ``reason`` in a few words."""

    path: str
    reason: str


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    ``paths``: (N,) array of absolute file paths (str); ``labels``: (N,) int64 class
    indices into ``DatasetIndex.class_ids``; ``boxes``: (N, 4) float32 object boxes
    ``x0, y0, x1, y1`` in pixels, NaN where the dataset gives none.
    """

    name: str
    paths: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: np.ndarray) -> "Split":
        """The samples selected by a boolean mask or index array ``keep``, in order."""
        return replace(self, paths=self.paths[keep], labels=self.labels[keep],
                       boxes=self.boxes[keep])


@dataclass(frozen=True)
class DatasetIndex:
    """Paths, labels, class ids and human-readable class names of a dataset folder.

    ``class_ids`` are the dataset's own ids (``n02085620`` or the folder names) and
    ``class_names`` the names people read ("Chihuahua", "teddy bear"), in label order.
    ``skipped`` lists bad files left out with ``skip_bad=True``.
    """

    root: Path
    layout: str
    class_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    splits: dict[str, Split]
    skipped: tuple[BadFile, ...] = field(default=())

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def val(self) -> Split:
        return self.splits["val"]

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    def split(self, name: str) -> Split:
        """The split called ``name`` ("train" or "val")."""
        if name not in self.splits:
            raise AugmineError(f"{self.root}: no split {name!r}; choose one of "
                               f"{', '.join(sorted(self.splits))}")
        return self.splits[name]

    def class_counts(self, split: str = "train") -> np.ndarray:
        """(C,) number of images per class in ``split``."""
        return np.bincount(self.split(split).labels, minlength=self.num_classes)

    def class_index(self, key: str | int) -> int:
        """The label of a class given by human name, class id or index (case-insensitive).

        Raises :class:`AugmineError` naming the closest names when nothing matches.
        """
        if isinstance(key, (int, np.integer)):
            if 0 <= int(key) < self.num_classes:
                return int(key)
            raise AugmineError(f"class index {key} is out of range: {self.root} has "
                               f"{self.num_classes} classes (0..{self.num_classes - 1})")
        wanted = str(key).strip().lower()
        for i, (cid, name) in enumerate(zip(self.class_ids, self.class_names)):
            if wanted in (cid.lower(), name.lower()):
                return i
        if wanted.isdigit() and int(wanted) < self.num_classes:
            return int(wanted)
        choices = list(self.class_names) + list(self.class_ids)
        hint = did_you_mean(key, choices, n=3, cutoff=0.5) or (
            f"known classes: {', '.join(self.class_names[:8])}"
            + (", ..." if self.num_classes > 8 else ""))
        raise AugmineError(f"no class {key!r} in {self.root}; {hint}")

    def check_trainable(self) -> "DatasetIndex":
        """Raise a one-line :class:`AugmineError` unless a model can be trained on this index.

        Training needs at least 2 classes and images in both the train and val splits.
        Returns ``self`` so calls chain: ``load_index(root).check_trainable()``.
        """
        problems = trainable_problems(self)
        if problems:
            raise AugmineError(problems[0])
        return self

    def class_label(self, label: int) -> str:
        """Display label ``"name (id)"`` for class index ``label``."""
        name, cid = self.class_names[label], self.class_ids[label]
        return name if name == cid else f"{name} ({cid})"

    def class_mismatch(self, class_ids, class_names=None) -> str | None:
        """None when this index has exactly ``class_ids`` in that order, else the first
        difference in words ("class 1 is n02085620 (Chihuahua) where ... has s0000000
        (striped red circle)"); the caller names the other side after "where"."""
        want = [str(c) for c in class_ids]
        names = list(class_names) if class_names is not None else want
        if list(self.class_ids) == want:
            return None
        for i, (have, other) in enumerate(zip(self.class_ids, want)):
            if have != other:
                return (f"class {i + 1} is {self.class_label(i)} where the run has "
                        f"{_labelled(other, names[i])}")
        return (f"it has {self.num_classes} classes where the run has {len(want)} "
                f"(the run's classes start {_labelled(want[0], names[0])})")

    def check_classes(self, class_ids, class_names, run, fix: str) -> "DatasetIndex":
        """Raise a one-line :class:`AugmineError` unless this index has the classes (ids, in
        order) that ``run`` was trained on; ``fix`` says what to do instead. Returns ``self``."""
        diff = self.class_mismatch(class_ids, class_names)
        if diff is not None:
            raise AugmineError(f"{self.root} does not hold the classes {run} was trained on: "
                               f"{diff}; {fix}")
        return self


def _labelled(cid: str, name: str) -> str:
    return cid if name == cid else f"{cid} ({name})"


def lookup_class(key, class_ids: Sequence[str], class_names: Sequence[str], where: str,
                 otherwise: str) -> int:
    """Class label from an int index, a class id or a human name (case-insensitive).

    Raises a one-line :class:`AugmineError` starting with ``where``: for an unknown class the
    closest ids and names (difflib), or ``otherwise`` (the fix) when none is close.
    """
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if 0 <= int(key) < len(class_ids):
            return int(key)
        raise AugmineError(f"{where}: class index {key} is out of range (0..{len(class_ids) - 1})")
    wanted = str(key).strip().lower()
    for i, (cid, name) in enumerate(zip(class_ids, class_names)):
        if wanted in (cid.lower(), name.lower()):
            return i
    hint = did_you_mean(key, list(class_names) + list(class_ids), n=3, cutoff=0.5) or otherwise
    raise AugmineError(f"{where}: unknown class {key!r}; {hint}")


def trainable_problems(index: DatasetIndex) -> list[str]:
    """One line per reason ``index`` cannot be trained on (empty list when it can)."""
    out = []
    if index.num_classes < 2:
        which = f" ({index.class_names[0]})" if index.num_classes else ""
        out.append(f"{index.root}: training needs at least 2 classes, this dataset has "
                   f"{index.num_classes}{which}; add another class folder (or class id in "
                   "wnids.txt) with its images")
    for name in SPLITS:
        if name in index.splits and len(index.splits[name]) == 0:
            out.append(f"{index.root}: the {name} split has no images; training needs "
                       f"images in {name}/")
    return out


def drop_bad_files(index: DatasetIndex, bad: list[BadFile], skip_bad: bool) -> DatasetIndex:
    """``index`` without the ``bad`` files when ``skip_bad`` (each logged); else raise one error for all."""
    if not bad:
        return index
    if not skip_bad:
        shown = "; ".join(f"{os.path.relpath(b.path, index.root)}: {b.reason}" for b in bad[:3])
        more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise AugmineError(f"{len(bad)} bad file(s) in {index.root}: {shown}{more}; delete or "
                           "replace them, or pass --skip-bad to continue without them")
    drop = {b.path for b in bad}
    for b in bad:
        log.warning("skipping %s: %s", b.path, b.reason)
    splits = {name: s.subset(np.array([p not in drop for p in s.paths], dtype=bool))
              for name, s in index.splits.items()}
    return replace(index, splits=splits, skipped=index.skipped + tuple(bad))


def skipped_paths(index: DatasetIndex) -> list[str]:
    """The files ``index`` left out, as sorted paths relative to its root (what a run records)."""
    return sorted({os.path.relpath(b.path, index.root) for b in index.skipped})


# =========================================================================== images
# Image files: decoding them to RGB uint8 arrays, and finding the bad ones (unreadable,
# empty, truncated, undecodable) before any training, in a thread pool (OpenCV releases the
# GIL).

def _jpeg_complete(data: bytes) -> bool:
    # A JPEG ends with the EOI marker FF D9; OpenCV decodes truncated files silently
    # (grey bottom rows), so this is the only cheap way to catch them.
    return data.rstrip(b"\x00\r\n")[-2:] == b"\xff\xd9"


def decode_image(data: bytes, path: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 array (H, W, 3); grayscale becomes 3 channels."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise AugmineError(f"{path}: cannot decode image (corrupt or not an image); delete "
                           "or replace it, or pass --skip-bad to leave bad files out")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an RGB uint8 array (H, W, 3); grayscale files become 3 channels."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AugmineError(f"{path}: cannot read ({exc.strerror}); check that the file exists")
    return decode_image(data, str(path))


def load_images(paths: Iterable[str], workers: int | None = None) -> list[np.ndarray]:
    """Read many images in a thread pool; RGB uint8 arrays in the order of ``paths``."""
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        return list(pool.map(read_image, paths))


@dataclass(frozen=True)
class ImageCheck:
    """What :func:`check_image` found: ``shape`` (H, W), grayscale or not, or a ``reason``."""

    path: str
    shape: tuple[int, int] | None
    grayscale: bool
    reason: str | None


def check_image(path: str) -> ImageCheck:
    """Decode one file fully; report its size, whether it is grayscale, or why it is bad."""
    import cv2

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return ImageCheck(path, None, False, f"cannot read ({exc.strerror})")
    if not data:
        return ImageCheck(path, None, False, "empty file")
    if data[:2] == b"\xff\xd8" and not _jpeg_complete(data):
        return ImageCheck(path, None, False, "truncated JPEG (no end marker)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        return ImageCheck(path, None, False, "not a decodable image")
    gray = img.ndim == 2 or img.shape[2] == 1
    if not gray and img.shape[2] >= 3:
        b, g, r = img[..., 0], img[..., 1], img[..., 2]
        gray = bool(np.array_equal(b, g) and np.array_equal(g, r))
    return ImageCheck(path, (int(img.shape[0]), int(img.shape[1])), gray, None)


@dataclass(frozen=True)
class VerifyReport:
    """Result of decoding every image of an index."""

    checked: int
    grayscale: dict[str, int]
    sizes: dict[str, Counter]
    bad: list[BadFile]
    grayscale_paths: list[str] = field(default_factory=list)


def verify_index(index: DatasetIndex, workers: int | None = None,
                 progress: bool = False) -> VerifyReport:
    """Decode every image of ``index`` in a thread pool (OpenCV releases the GIL).

    Returns counts of grayscale images and image sizes per split, and the bad files.
    """
    from augmine.core.runtime import progress_bar

    jobs = [(name, p) for name, s in index.splits.items() for p in s.paths]
    workers = workers or os.cpu_count() or 1
    gray, sizes, bad, gray_paths = Counter(), {}, [], []
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(check_image, (p for _, p in jobs), chunksize=256)
        for (split, _), res in progress_bar(zip(jobs, results), total=len(jobs),
                                            progress=progress, desc="checking images",
                                            unit="img"):
            if res.reason:
                bad.append(BadFile(res.path, res.reason))
                continue
            sizes.setdefault(split, Counter())[res.shape] += 1
            if res.grayscale:
                gray[split] += 1
                gray_paths.append(res.path)
    return VerifyReport(checked=len(jobs), grayscale=dict(gray), sizes=sizes, bad=bad,
                        grayscale_paths=gray_paths)


def find_bad_images(index: DatasetIndex, splits: Sequence[str] | None = None,
                    workers: int | None = None, progress: bool = False) -> list[BadFile]:
    """Decode every image of the named ``splits`` (default: all) and return the bad ones.

    A thread pool over OpenCV: the 3,000-image sample takes well under a second.
    """
    names = list(index.splits) if splits is None else [index.split(s).name for s in splits]
    sub = replace(index, splits={n: index.splits[n] for n in names})
    return verify_index(sub, workers=workers, progress=progress).bad


def check_images(index: DatasetIndex, skip_bad: bool = False,
                 splits: Sequence[str] | None = None, progress: bool = False) -> DatasetIndex:
    """Decode the images of ``splits`` now, before any training, with ``--skip-bad`` semantics.

    Returns ``index`` unchanged when every image decodes; otherwise, with ``skip_bad`` the
    index without the bad files (each logged as a warning, listed in ``skipped``), else one
    :class:`AugmineError` that counts them and names the first few.
    """
    return drop_bad_files(index, find_bad_images(index, splits, progress=progress), skip_bad)


# =========================================================================== layouts
# Dataset folders -> a :class:`~augmine.data.dataset.DatasetIndex`.
#
# Two layouts are read:
#
# - **Tiny-ImageNet** (as the official zip extracts): ``wnids.txt``, optional ``words.txt``,
# ``train/<wnid>/images/*.JPEG`` with ``train/<wnid>/<wnid>_boxes.txt`` and
# ``val/images/*.JPEG`` with ``val/val_annotations.txt`` (file, wnid, x0, y0, x1, y1).
# - **Class folders**: ``train/<class>/*.jpg`` and ``val/<class>/*.jpg`` (any image extension).
#
# Indexing only lists folders and reads the text files, so the full Tiny-ImageNet
# (110,000 images) indexes in about a second (``benchmarks/index.py``). Decoding every image
# to find corrupt ones is the separate, parallel :func:`augmine.data.dataset.verify_index`.
#
# Everything a user can get wrong raises :class:`~augmine.core.errors.AugmineError` with one line
# naming the file, the place and the fix. :func:`scan_dataset` with a ``problems`` list
# collects those lines instead, skipping the broken parts, so ``augmine data check`` reports
# every problem of a tree in one run.

IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".webp"})
# Files that real copies of datasets pick up from file managers and archivers.
STRAY_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db"})


def _problem(problems: list[str] | None, message: str) -> None:
    """Raise ``message`` as an :class:`AugmineError`, or collect it when ``problems`` is a list."""
    if problems is None:
        raise AugmineError(message)
    problems.append(message)


# --------------------------------------------------------------------------- text files

def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty, stripped lines with 1-based line numbers; copes with CRLF, BOM, no final newline."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise AugmineError(f"{path}: cannot read ({exc.strerror}); check the file's permissions")
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def display_name(synonyms: str) -> str:
    """A short human name from a WordNet synonym list such as ``"teddy, teddy bear"``.

    The first synonym is kept unless a later one extends it ("teddy" -> "teddy bear",
    "tabby" -> "tabby cat"); Latin names that follow ("goldfish, Carassius auratus")
    are dropped.
    """
    words = [w.strip() for w in synonyms.split(",") if w.strip()]
    if not words:
        return ""
    first = words[0]
    for later in words[1:]:
        if first.lower() in later.lower().split() or later.lower().startswith(first.lower() + " "):
            return later
    return first


def _read_words(path: Path, wanted: Sequence[str]) -> dict[str, str]:
    """Human names for the ``wanted`` ids from a ``words.txt`` (which lists far more ids)."""
    if not path.exists():
        return {}
    wanted_set = set(wanted)
    names = {}
    for _, line in _read_lines(path):
        wnid, _, syn = line.partition("\t")
        if not syn:
            wnid, _, syn = line.partition(" ")
        if wnid in wanted_set:
            names[wnid] = display_name(syn)
    return names


def _unique_names(ids: Sequence[str], names: Sequence[str]) -> tuple[str, ...]:
    """Names, with the class id appended where two classes would otherwise read the same."""
    counts = Counter(n.lower() for n in names)
    return tuple(n if counts[n.lower()] == 1 else f"{n} ({i})" for i, n in zip(ids, names))


# --------------------------------------------------------------------------- listing

def _is_stray(name: str) -> bool:
    low = name.lower()
    return low in STRAY_FILES or name.startswith(".") or name.startswith("._")


def _list_images(folder: Path, bad: list[BadFile]) -> list[str]:
    """Sorted image file names in ``folder``; other files are reported in ``bad``."""
    names = []
    with os.scandir(folder) as it:
        for entry in it:
            if _is_stray(entry.name) or not entry.is_file():
                continue
            if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                names.append(entry.name)
            elif not entry.name.lower().endswith(".txt"):
                bad.append(BadFile(entry.path, "not an image file (unknown extension)"))
    names.sort()
    return names


def _subdirs(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir() and not _is_stray(e.name))


def _parse_box(fields: Sequence[str], where: str) -> list[float]:
    try:
        return [float(v) for v in fields[:4]]
    except ValueError:
        raise AugmineError(f"{where}: box {' '.join(fields[:4])!r} is not four numbers "
                           "x0 y0 x1 y1; fix or delete the line")


def _read_boxes(path: Path, problems: list[str] | None) -> dict[str, list[float]]:
    if not path.exists():
        return {}
    boxes = {}
    for n, line in _read_lines(path):
        fields = line.split()
        try:
            if len(fields) < 5:
                raise AugmineError(f"{path}:{n}: expected 'file x0 y0 x1 y1', got {line!r}; "
                                   "fix or delete the line")
            boxes[fields[0]] = _parse_box(fields[1:], f"{path}:{n}")
        except AugmineError as exc:
            _problem(problems, str(exc))
    return boxes


def _make_split(name: str, paths: list[str], labels: list[int],
                boxes: list[list[float]]) -> Split:
    return Split(name=name, paths=np.array(paths, dtype=object),
                 labels=np.array(labels, dtype=np.int64),
                 boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4))


def _index_tiny_imagenet(root: Path, bad: list[BadFile], problems: list[str] | None):
    wnids_path = root / "wnids.txt"
    if not wnids_path.exists():
        raise AugmineError(f"{wnids_path} is missing: a Tiny-ImageNet folder lists its class "
                           "ids there, one per line; re-extract the dataset archive")
    wnids = []
    for n, line in _read_lines(wnids_path):
        wnid = line.split()[0]
        if wnid in wnids:
            _problem(problems, f"{wnids_path}:{n}: class {wnid} is listed twice; "
                     "delete the repeated line")
            continue
        wnids.append(wnid)
    if not wnids:
        raise AugmineError(f"{wnids_path} lists no classes; it needs one class id per line")
    label_of = {w: i for i, w in enumerate(wnids)}
    nan_box = [np.nan] * 4

    paths, labels, boxes = [], [], []
    for wnid in wnids:
        cls_dir = root / "train" / wnid
        img_dir = cls_dir / "images"
        if not img_dir.is_dir():
            _problem(problems, f"{img_dir} is missing: wnids.txt lists class {wnid} but it "
                     "has no training images folder; restore it or remove the class from "
                     "wnids.txt")
            continue
        names = _list_images(img_dir, bad)
        if not names:
            _problem(problems, f"{img_dir} is empty: class {wnid} has no training images; "
                     "restore them or remove the class from wnids.txt")
            continue
        class_boxes = _read_boxes(cls_dir / f"{wnid}_boxes.txt", problems)
        for fname in names:
            paths.append(str(img_dir / fname))
            labels.append(label_of[wnid])
            boxes.append(class_boxes.get(fname, nan_box))
    train = _make_split("train", paths, labels, boxes)

    ann_path = root / "val" / "val_annotations.txt"
    val_dir = root / "val" / "images"
    present = set(_list_images(val_dir, bad)) if val_dir.is_dir() else set()
    lines = _read_lines(ann_path) if ann_path.exists() else []
    if not ann_path.exists():
        _problem(problems, f"{ann_path} is missing: Tiny-ImageNet's validation labels live "
                 "there (file, class id, box per line); re-extract the dataset archive")
    paths, labels, boxes = [], [], []
    for n, line in lines:
        fields = line.split()
        where = f"{ann_path}:{n}"
        if len(fields) < 2:
            _problem(problems, f"{where}: expected 'file class_id x0 y0 x1 y1', "
                     f"got {line!r}; fix or delete the line")
            continue
        fname, wnid = fields[0], fields[1]
        if wnid not in label_of:
            _problem(problems, f"{where}: class {wnid} is not in wnids.txt; add it to "
                     "wnids.txt or delete the line")
            continue
        if fname not in present:
            _problem(problems, f"{where}: {val_dir / fname} does not exist; restore "
                     "the image or delete the line")
            continue
        box = nan_box
        if len(fields) >= 6:
            try:
                box = _parse_box(fields[2:6], where)
            except AugmineError as exc:
                _problem(problems, str(exc))
        paths.append(str(val_dir / fname))
        labels.append(label_of[wnid])
        boxes.append(box)
    val = _make_split("val", paths, labels, boxes)
    names = _read_words(root / "words.txt", wnids)
    return wnids, [names.get(w) or w for w in wnids], {"train": train, "val": val}


def _index_class_folders(root: Path, bad: list[BadFile], problems: list[str] | None):
    classes = _subdirs(root / "train")
    if not classes:
        raise AugmineError(f"{root / 'train'} has no class folders; expected "
                           "train/<class>/<image> (or a Tiny-ImageNet folder with wnids.txt)")
    label_of = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split in SPLITS:
        split_dir = root / split
        paths, labels = [], []
        if not split_dir.is_dir():
            _problem(problems, f"{split_dir} is missing: expected {split}/<class>/<image> "
                     "beside train/")
        for cls in _subdirs(split_dir) if split_dir.is_dir() else []:
            if cls not in label_of:
                _problem(problems, f"{split_dir / cls}: class {cls!r} has no folder in "
                         f"{root / 'train'}; rename or remove it")
                continue
            names = _list_images(split_dir / cls, bad)
            if not names:
                _problem(problems, f"{split_dir / cls} is empty: add images of class "
                         f"{cls!r} or remove the folder")
                continue
            paths += [str(split_dir / cls / f) for f in names]
            labels += [label_of[cls]] * len(names)
        splits[split] = _make_split(split, paths, labels, [[np.nan] * 4] * len(paths))
    return classes, list(classes), splits


def detect_layout(root: Path) -> str:
    """``"tiny-imagenet"`` or ``"folders"``; raises when ``root`` is neither."""
    if not root.is_dir():
        raise AugmineError(f"{root} is not a folder; give the dataset folder that holds "
                           "train/ and val/ (run `augmine data synth DEST` for a generated one)")
    if (root / "wnids.txt").exists() or (root / "val" / "val_annotations.txt").exists():
        return "tiny-imagenet"
    if (root / "train").is_dir():
        first = _subdirs(root / "train")[:1]
        if first and (root / "train" / first[0] / "images").is_dir():
            return "tiny-imagenet"
        return "folders"
    raise AugmineError(f"{root} holds no train/ folder; expected the Tiny-ImageNet layout "
                       "(wnids.txt, train/, val/) or train/<class>/ and val/<class>/ folders")


def scan_dataset(root: str | os.PathLike, problems: list[str] | None = None
                 ) -> tuple[DatasetIndex, list[BadFile]]:
    """Index ``root`` without judging it: every listed image, plus the non-image files found.

    Structural problems (an annotation naming an unknown class or a missing file, an empty
    class folder...) raise :class:`AugmineError`; when a ``problems`` list is given, each
    one's message is appended to it instead and the broken line or folder is left out.
    Problems that leave nothing to index (no folder, no ``wnids.txt``, no classes) always
    raise. Most callers want :func:`load_index`.
    """
    root = Path(root).expanduser().resolve()
    layout = detect_layout(root)
    bad: list[BadFile] = []
    if layout == "tiny-imagenet":
        ids, names, splits = _index_tiny_imagenet(root, bad, problems)
    else:
        ids, names, splits = _index_class_folders(root, bad, problems)
    index = DatasetIndex(root=root, layout=layout, class_ids=tuple(ids),
                         class_names=_unique_names(ids, names), splits=splits)
    return index, bad


def load_index(root: str | os.PathLike, skip_bad: bool = False,
               verify: bool = False) -> DatasetIndex:
    """Index the dataset folder ``root`` (the Tiny-ImageNet layout, or ``train/<class>/``
    and ``val/<class>/`` image folders, ImageFolder style).

    Returns a :class:`DatasetIndex`: ``class_ids`` and ``class_names`` (C,) in label order,
    ``index.train`` / ``index.val`` with ``paths`` (N,) str and ``labels`` (N,) int64. No
    image is decoded unless ``verify``. With ``verify=True`` every image is decoded (in parallel) so corrupt and truncated
    files are found now rather than mid-training. Bad files raise one
    :class:`AugmineError` that counts them and names the first few; with
    ``skip_bad=True`` they are left out and each is logged as a warning instead.
    """
    index, bad = scan_dataset(root)
    if verify:
        bad += verify_index(index).bad
    return drop_bad_files(index, bad, skip_bad)


def load_checked_index(root: str | os.PathLike, skip_bad: bool = False,
                       skipped: Sequence[str] = (), splits: Sequence[str] | None = None,
                       progress: bool = False) -> DatasetIndex:
    """The dataset folder ``root`` ready to train or evaluate on, checked before any batch.

    Loads ``root`` (structural problems raise), requires >= 2 classes and images in both
    splits, leaves out ``skipped`` (paths relative to ``root`` that a run left out before, so
    a resumed run sees the same index; each logged), then decodes every image of ``splits``
    (default all): bad ones are left out, each logged, with ``skip_bad``, else one
    :class:`AugmineError` names them and suggests ``--skip-bad``. ``index.skipped`` lists
    every file left out (see :func:`skipped_paths`).
    """
    index = load_index(root).check_trainable()
    if skipped:
        index = drop_bad_files(index, [BadFile(str(index.root / p), "left out when the run "
                                               "started (--skip-bad)") for p in skipped], True)
    return check_images(index, skip_bad, splits=splits, progress=progress).check_trainable()
