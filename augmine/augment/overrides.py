"""Per-class recipe overrides: a recipe's ``classes:`` matched to a dataset's classes, and
the recipe one class is augmented with (transforms left out, strength scaled)."""

from __future__ import annotations

import copy
import os
from typing import Any, Sequence

from augmine.core.errors import AugmineError
from augmine.augment.recipes import Recipe, as_recipe, parse_recipe
from augmine.augment.strength import scale_recipe


def class_overrides(recipe: Recipe | str | os.PathLike, class_ids: Sequence[str],
                    class_names: Sequence[str]) -> dict[int, dict]:
    """``{label: override}`` for the recipe's ``classes:``, each key matched to a dataset
    class by id or name (case-insensitive); ``class_ids`` / ``class_names``: the dataset's,
    in label order. An unknown class, or two keys naming one class, is a one-line
    :class:`AugmineError` with the closest class names."""
    from augmine.data.dataset import lookup_class

    recipe = as_recipe(recipe)
    source = str(recipe.path or recipe.name)
    shown = ", ".join(list(class_names)[:8]) + (", ..." if len(class_names) > 8 else "")
    out: dict[int, dict] = {}
    keys: dict[int, str] = {}
    for key, override in recipe.classes.items():
        label = lookup_class(key, class_ids, class_names, f"{source}: classes",
                             f"this dataset's classes: {shown}")
        if label in out:
            raise AugmineError(f"{source}: classes: {keys[label]!r} and {key!r} both name "
                               f"class {class_names[label]} ({class_ids[label]}); keep one")
        out[label], keys[label] = override, key
    return out


def _drop_transforms(entries: list[dict[str, Any]], names: set[str]) -> list[dict[str, Any]]:
    """``entries`` without the transforms named in ``names`` (inside containers too; a
    container left with no children goes as well)."""
    out = []
    for entry in entries:
        if entry.get("transform") in names:
            continue
        if "transforms" in entry:
            kids = _drop_transforms(entry["transforms"], names)
            if not kids:
                continue
            entry = dict(entry, transforms=kids)
        out.append(copy.deepcopy(entry))
    return out


def recipe_for_class(recipe: Recipe | str | os.PathLike, override: dict) -> Recipe:
    """The recipe of one class: the transforms ``override["without"]`` names dropped (also
    inside containers), then scaled to ``recipe.strength * override["strength"]`` by
    :func:`scale_recipe` from the recipe as written (so a phase at 0.5 and a class at 0.3
    give 0.15). ``override``: one value of :func:`class_overrides`. The result has no
    ``classes``."""
    recipe = as_recipe(recipe)
    base = recipe.origin or recipe
    without = set(override.get("without") or ())
    name = base.name + (f" without {', '.join(sorted(without))}" if without else "")
    plain = parse_recipe({"name": name, "description": base.description,
                          "transforms": _drop_transforms(base.transforms, without)},
                         f"{base.path or base.name}: class override", base.path)
    return scale_recipe(plain, recipe.strength * float(override.get("strength", 1.0)))
