"""Dataset folders -> a :class:`~augmine.data.dataset.DatasetIndex`.

Two layouts are read:

- **Tiny-ImageNet** (as the official zip extracts): ``wnids.txt``, optional ``words.txt``,
  ``train/<wnid>/images/*.JPEG`` with ``train/<wnid>/<wnid>_boxes.txt`` and
  ``val/images/*.JPEG`` with ``val/val_annotations.txt`` (file, wnid, x0, y0, x1, y1).
- **Class folders**: ``train/<class>/*.jpg`` and ``val/<class>/*.jpg`` (any image extension).

Indexing only lists folders and reads the text files, so the full Tiny-ImageNet
(110,000 images) indexes in about a second (``benchmarks/index.py``). Decoding every image
to find corrupt ones is the separate, parallel :func:`augmine.data.images.verify_index`.

Everything a user can get wrong raises :class:`~augmine.core.errors.AugmineError` with one line
naming the file, the place and the fix. :func:`scan_dataset` with a ``problems`` list
collects those lines instead, skipping the broken parts, so ``augmine data check`` reports
every problem of a tree in one run.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from augmine.core.errors import AugmineError
from augmine.data.dataset import SPLITS, BadFile, DatasetIndex, Split, drop_bad_files
from augmine.data.images import check_images, verify_index

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

