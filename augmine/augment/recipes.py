"""Recipe files (YAML) <-> albumentations pipelines.

A recipe is a YAML file::

    name: light
    description: cheap transforms for the 16 px phase
    transforms:
      - transform: RandomResizedCrop      # albumentations class name
        p: 1.0                            # required (albumentations would default to 0.5)
        why: val boxes cover a median 49% of the frame
        scale: [0.35, 1.0]                # only arguments that differ from the defaults
      - transform: OneOf                  # containers hold their own `transforms:` list
        p: 0.3
        transforms: [...]
    classes:                              # optional per-class overrides (class id or name)
      "teddy bear": {strength: 0.3}       # this class at 0.3 x the phase's strength
      n02085620: {without: [RandomResizedCrop], why: "..."}

Parameters are checked by albumentations itself (``A.from_dict`` and its pydantic
schemas, with ``strict=True`` so misspelt arguments are errors); this module only adds
what albumentations does not do: the phase size injected into crops, a required ``p``,
sanity bounds on values albumentations accepts but that make no sense
(:data:`augmine.augment.checks.SANITY_BOUNDS`), the structure of class overrides, and one-line
:class:`~augmine.core.errors.AugmineError` messages that name the file, the entry number and
the fix.

This module holds the :class:`Recipe` and reading/writing it (:func:`load_recipe`,
:func:`parse_recipe`, :func:`dump_recipe`). Beside it: :mod:`augmine.augment.transforms`
(entries -> albumentations), :mod:`augmine.augment.compose` (the Compose a feed calls,
reseeding, export), :mod:`augmine.augment.strength` (:func:`scale_recipe`),
:mod:`augmine.augment.overrides` (``classes:`` per dataset class); finding a built-in
recipe by name is :func:`augmine.core.shipped.resolve_recipe`.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augmine.core.naming import did_you_mean
from augmine.core.errors import AugmineError
from augmine.core.shipped import resolve_recipe
from augmine.augment.checks import check_class_overrides, transform_names
from augmine.augment.transforms import Where, instantiate, to_albu_dict, transform_registry

RECIPE_KEYS = ("name", "description", "transforms", "classes")
# Size of the small random image every recipe is tried on when it is loaded.
_SMOKE_SIZE = 24


@dataclass
class Recipe:
    """A loaded, validated recipe.

    ``transforms``: the entries as written in the file (dicts with ``transform``, ``p``,
    ``why`` and the non-default arguments; containers keep their nested ``transforms``).
    ``classes``: per-class overrides as written (``{class id or name: {strength, without,
    why}}``), resolved against a dataset by :func:`augmine.augment.overrides.class_overrides`.
    ``strength``: set by :func:`augmine.augment.strength.scale_recipe`, whose result keeps
    the recipe as written in ``origin`` (so class strengths multiply the phase's strength
    exactly, see :func:`augmine.augment.overrides.recipe_for_class`).
    """

    name: str
    description: str
    path: Path | None
    transforms: list[dict[str, Any]] = field(default_factory=list)
    strength: float = 1.0
    classes: dict[str, dict] = field(default_factory=dict)
    origin: Recipe | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.transforms)


def _yaml_load(text: str, source: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
        if mark is not None:
            raise AugmineError(f"{source}:{mark.line + 1}:{mark.column + 1}: YAML syntax error: "
                               f"{problem}; check indentation, colons and quotes there") from None
        raise AugmineError(f"{source}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise AugmineError(f"{source}: YAML error: {' '.join(str(exc).split())}") from None


def parse_recipe(data: Any, source: str = "<recipe>", path: Path | None = None) -> Recipe:
    """Validate an already-parsed recipe mapping (``name``, ``description``, ``transforms``,
    optional ``classes``).

    Every entry is built once by albumentations (so its arguments are checked there), its
    values are held to the sanity bounds, the whole recipe is tried on a small random
    image at p=1, and class overrides are checked for structure (keys, strength, transforms
    named in ``without``); raises a one-line :class:`AugmineError` naming ``source`` and the
    entry number or class key.
    """
    if not isinstance(data, dict):
        raise AugmineError(f"{source}: a recipe is a mapping with 'name:', 'description:' and "
                           "'transforms:' (a list); got " + type(data).__name__)
    for key in data:
        if key not in RECIPE_KEYS:
            hint = did_you_mean(key, RECIPE_KEYS) or f"allowed: {', '.join(RECIPE_KEYS)}"
            raise AugmineError(f"{source}: unknown key {key!r}; {hint}")
    transforms = data.get("transforms")
    if transforms is None:
        transforms = []
    if not isinstance(transforms, list):
        raise AugmineError(f"{source}: 'transforms:' must be a list of entries "
                           "('- transform: HorizontalFlip'), got " + type(transforms).__name__)
    recipe = Recipe(name=str(data.get("name") or (path.stem if path else "recipe")),
                    description=" ".join(str(data.get("description") or "").split()),
                    path=path, transforms=copy.deepcopy(transforms))
    registry = transform_registry()
    for i, entry in enumerate(transforms, 1):
        where = Where(source, str(i))
        instantiate(to_albu_dict(entry, where, registry, _SMOKE_SIZE, check=True), where)
    _smoke_test(recipe, source)
    recipe.classes = copy.deepcopy(check_class_overrides(data.get("classes"),
                                                         transform_names(transforms), source))
    return recipe


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and fully validate a recipe file (or a built-in name, see
    :func:`augmine.core.shipped.resolve_recipe`).

    Returns a :class:`Recipe`; every problem is a one-line :class:`AugmineError` with the
    file and the entry number (YAML syntax errors as ``file:line:column``).
    """
    path = resolve_recipe(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise AugmineError(f"{path}: cannot read ({exc.strerror}); check the file") from None
    except UnicodeDecodeError:
        raise AugmineError(f"{path}: not a text file (not UTF-8); a recipe is a YAML file")
    data = _yaml_load(text, str(path))
    if data is None:
        raise AugmineError(f"{path} is empty; a recipe needs at least 'name:' and 'transforms:'")
    return parse_recipe(data, str(path), path)


def as_recipe(recipe: Recipe | str | os.PathLike) -> Recipe:
    """``recipe`` itself when it is a :class:`Recipe`, else :func:`load_recipe` of the path
    or built-in name."""
    return recipe if isinstance(recipe, Recipe) else load_recipe(recipe)


class RecipeBook:
    """The recipe files one command uses, each read and validated once.

    :meth:`load` gives the :class:`Recipe` of a path or built-in name, parsing the file
    the first time only. A training config keeps the book it was validated with
    (:meth:`~augmine.runs.config.TrainConfig.recipe`), so the phases' feeds, and through
    their pickled composes the worker processes, use the recipe parsed at config load.
    Recipes are not changed after loading (every edit makes a new one), so sharing is safe.
    """

    def __init__(self):
        self._loaded: dict[str, Recipe] = {}

    def load(self, path: str | os.PathLike) -> Recipe:
        """The validated :class:`Recipe` of ``path`` (a file or built-in name), read once."""
        key = str(Path(resolve_recipe(path)).resolve())
        if key not in self._loaded:
            self._loaded[key] = load_recipe(key)
        return self._loaded[key]


def _smoke_test(recipe: Recipe, source: str) -> None:
    """Apply every entry at p=1 to a small odd-sized image: catch transforms that need other
    inputs (boxes, masks) or change dtype/channels, with the entry number."""
    import numpy as np

    registry = transform_registry()
    img = np.random.default_rng(0).integers(0, 256, (_SMOKE_SIZE + 5, _SMOKE_SIZE + 3, 3),
                                            dtype=np.uint8)
    for i, entry in enumerate(recipe.transforms, 1):
        where = Where(source, str(i), entry.get("transform"))
        albu = to_albu_dict(dict(entry, p=1.0), where, registry, _SMOKE_SIZE, check=False)
        t = instantiate(albu, where)
        try:
            out = t(image=img.copy())["image"]
        except Exception as exc:  # any failure here is a transform unfit for plain images
            raise AugmineError(f"{where}: fails on a plain RGB image "
                               f"({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); "
                               "augmine recipes may only use image transforms that need no "
                               "boxes, masks or extra inputs") from None
        if getattr(out, "dtype", None) != np.uint8 or out.ndim != 3 or out.shape[2] != 3:
            raise AugmineError(f"{where}: turns the image into {getattr(out, 'dtype', '?')} "
                               f"{getattr(out, 'shape', '?')}; augmine needs uint8 RGB "
                               "(H, W, 3) throughout (the pipeline scales to [0, 1] itself); "
                               "remove it")



def describe_args(entry: dict[str, Any]) -> str:
    """The non-default arguments of an entry as ``k=v, k=v`` (for tables)."""
    parts = []
    for k, v in entry.items():
        if k in ("transform", "p", "why"):
            continue
        if k == "transforms":
            v = "[" + ", ".join(str(c.get("transform")) for c in v if isinstance(c, dict)) + "]"
        parts.append(f"{k}={v}")
    return ", ".join(parts)


def dump_recipe(recipe: Recipe | dict[str, Any]) -> str:
    """YAML text of a recipe (``Recipe`` or plain dict), keys in the documented order
    (``classes:`` last, when there are overrides)."""
    import yaml

    if isinstance(recipe, Recipe):
        recipe = {"name": recipe.name, "description": recipe.description,
                  "transforms": recipe.transforms, "classes": recipe.classes}
    ordered = []
    for entry in recipe.get("transforms", []):
        head = {k: entry[k] for k in ("transform", "p", "why") if k in entry}
        ordered.append({**head, **{k: v for k, v in entry.items() if k not in head}})
    doc = {"name": recipe.get("name"), "description": recipe.get("description", ""),
           "transforms": ordered}
    if recipe.get("classes"):
        doc["classes"] = {str(key): {k: o[k] for k in ("strength", "without", "why") if k in o}
                          for key, o in recipe["classes"].items()}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100,
                          default_flow_style=None)
