"""The dataset index: a dataset folder's images as a :class:`DatasetIndex` of paths, labels and
boxes per split, with its class ids and human names; the checks made on an index (classes,
trainability) and leaving bad files out.

Reading a folder into an index is :mod:`augmine.data.layouts` (:func:`~augmine.data.layouts.load_index`);
decoding images and finding bad ones is :mod:`augmine.data.images`. Everything a user can get
wrong raises :class:`~augmine.core.errors.AugmineError` with one line naming the file, the
place and the fix.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

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

