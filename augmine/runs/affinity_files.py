"""The run folder's ``affinity/<recipe>/`` files (``augmine recipe affinity``): a part of
:class:`augmine.runs.rundir.RunDir`, which owns the layout."""

from __future__ import annotations

from pathlib import Path

from augmine.core import atomic
from augmine.core.errors import AugmineError


class AffinityFiles:
    """``affinity/<recipe>/affinity.{json,csv,png}`` of a :class:`~augmine.runs.rundir.RunDir`
    (mixed into it: uses its ``path``)."""

    @property
    def affinity_root(self) -> Path:
        return self.path / "affinity"

    def affinity_dir(self, recipe_stem: str) -> Path:
        """``affinity/<recipe_stem>/``: one recipe's affinity measurement on this run."""
        stem = str(recipe_stem)
        if not stem or stem in (".", "..") or "/" in stem or "\\" in stem:
            raise AugmineError(f"recipe name {stem!r} cannot name a folder; rename the recipe "
                               "file")
        return self.affinity_root / stem

    def affinity_path(self, recipe_stem: str, kind: str = "json") -> Path:
        """``affinity/<recipe_stem>/affinity.<kind>``: ``json`` (full results), ``csv``
        (table) or ``png`` (heatmap)."""
        if kind not in ("json", "csv", "png"):
            raise AugmineError(f"affinity file kind {kind!r}: choose json, csv or png")
        return self.affinity_dir(recipe_stem) / f"affinity.{kind}"

    def affinity_recipes(self) -> list[str]:
        """Recipe stems with a saved affinity result (``affinity.json``), sorted."""
        if not self.affinity_root.is_dir():
            return []
        return sorted(p.name for p in self.affinity_root.iterdir()
                      if (p / "affinity.json").is_file())

    def read_affinity(self, recipe_stem: str) -> dict | None:
        """The saved affinity result of ``recipe_stem``, or None when there is none."""
        return atomic.read_json(self.affinity_path(recipe_stem),
                                f"remake it with `augmine recipe affinity {recipe_stem} "
                                f"--run {self.path} --force`")

    def write_affinity(self, recipe_stem: str, result: dict, table_csv: str) -> Path:
        """Write ``affinity.csv`` then ``affinity.json`` (the commit point) atomically."""
        atomic.write_text(self.affinity_path(recipe_stem, "csv"), table_csv)
        return atomic.write_json(self.affinity_path(recipe_stem), result)
