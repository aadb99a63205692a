"""Recipe files (YAML) <-> albumentations pipelines: the recipe format, its entries as
albumentations transforms, and the checks on values that albumentations does not make.

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
(:data:`SANITY_BOUNDS`), the structure of class overrides, and one-line
:class:`~augmine.core.errors.AugmineError` messages that name the file, the entry number and
the fix.

This module holds the :class:`Recipe` and reading/writing it (:func:`load_recipe`,
:func:`parse_recipe`, :func:`dump_recipe`), entries -> albumentations objects
(:func:`instantiate`) and the checks (:data:`SANITY_BOUNDS`). Beside it:
:mod:`augmine.augment.compose` (strength, ``classes:`` per dataset class, the Compose a
feed calls, reseeding, export); finding a built-in recipe by name is
:func:`augmine.core.runtime.resolve_recipe`.
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from augmine.core.errors import AugmineError
from augmine.core.naming import did_you_mean
from augmine.core.runtime import resolve_recipe


# =========================================================================== checks
# Checks on recipe values that albumentations does not make (used by :mod:`augmine.augment.recipes`
# when a recipe is loaded; pure functions over the entries as written).
#
# - Sanity bounds (:data:`SANITY_BOUNDS`): albumentations accepts arguments that make no sense,
# e.g. ``RandomBrightnessContrast: brightness_limit: 2.0`` (beyond the whole brightness
# scale) or a ``OneOf`` with ``p: 2``; such a value is a one-line error naming the entry,
# the argument and the range to use.
# - Class overrides (``classes:``): their structure, and that every transform ``without:``
# names is in the recipe. Which dataset class a key means is only known with a dataset
# (:func:`augmine.augment.compose.class_overrides`).

# Arguments (by name: each is used by one albumentations transform, except p) whose values
# outside [lowest, highest] albumentations 2.0 accepts although they make no sense for uint8
# RGB images: (lowest, highest, what the value means). Values albumentations already
# rejects (GaussNoise std_range > 1, ImageCompression quality_range, a transform's own p)
# are left to its checks.
SANITY_BOUNDS: dict[str, tuple[float, float, str]] = {
    "p": (0.0, 1.0, "a probability"),      # containers' p only: albumentations checks the rest
    "brightness_limit": (-1.0, 1.0, "a fraction of the full brightness scale: 1 already "
                                    "turns any image white"),
    "contrast_limit": (-1.0, 1.0, "a contrast change as a fraction: -1 already flattens the "
                                  "image to one grey"),
    "hue_shift_limit": (-180, 180, "the hue circle of a uint8 image has 180 steps: more "
                                   "wraps around"),
    "sat_shift_limit": (-255, 255, "saturation spans 0-255"),
    "val_shift_limit": (-255, 255, "value (brightness) spans 0-255"),
    "hue": (-0.5, 0.5, "ColorJitter's hue is a fraction of the hue circle: 0.5 already "
                       "reaches the opposite colour"),
    "translate_percent": (-1.0, 1.0, "a fraction of the image side: 1 already moves the "
                                     "image out of the frame"),
}
OVERRIDE_KEYS = ("strength", "without", "why")


def _numbers(value: Any) -> Iterator[float]:
    """The real numbers in a value (a number, a list/tuple of them, a {x, y} mapping)."""
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        yield float(value)


def check_ranges(entry: Mapping[str, Any], where: str) -> None:
    """Raise a one-line :class:`AugmineError` when an argument of ``entry`` (one recipe entry
    as written; its container children are checked separately) lies outside
    :data:`SANITY_BOUNDS`. ``where``: the entry for the message (file, number, transform)."""
    for arg, (lo, hi, meaning) in SANITY_BOUNDS.items():
        if arg not in entry:
            continue
        values = list(_numbers(entry[arg]))
        if all(lo <= x <= hi for x in values):
            continue
        fixed = [min(hi, max(lo, x)) for x in values]
        fix = f"{fixed[0]:g}" if len(fixed) == 1 else f"[{', '.join(f'{x:g}' for x in fixed)}]"
        raise AugmineError(f"{where}: {arg} {entry[arg]!r} is outside [{lo:g}, {hi:g}] "
                           f"({meaning}); use values within it, e.g. {arg}: {fix}")


def transform_names(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every ``transform`` name in ``entries``, containers' children included, in order."""
    out: list[str] = []
    for entry in entries:
        out.append(str(entry.get("transform")))
        out.extend(transform_names(entry.get("transforms") or ()))
    return out


def check_class_overrides(classes: Any, names: Sequence[str], source: str) -> dict[str, dict]:
    """Validate a recipe's ``classes:`` mapping; ``names``: the recipe's transform names
    (:func:`transform_names`). Returns ``{class key as text: override as written}`` (empty
    for a missing or empty ``classes:``); raises a one-line :class:`AugmineError` naming
    ``source``, the class key and the fix."""
    if classes is None:
        return {}
    if not isinstance(classes, Mapping):
        raise AugmineError(f"{source}: 'classes:' must map a class id or name to its override, "
                           "e.g. classes: {\"teddy bear\": {strength: 0.3}}; got "
                           + type(classes).__name__)
    out: dict[str, dict] = {}
    for key, override in classes.items():
        text = str(key).strip() if key is not None else ""
        where = f"{source}: classes: {text!r}"
        if not text:
            raise AugmineError(f"{source}: classes: an empty class key; use a class id "
                               "(n02085620) or name (\"teddy bear\")")
        if not isinstance(override, Mapping):
            raise AugmineError(f"{where}: expected a mapping with strength:, without: and/or "
                               f"why:, e.g. {{strength: 0.3}}; got {override!r}")
        for k in override:
            if k not in OVERRIDE_KEYS:
                hint = did_you_mean(k, OVERRIDE_KEYS) or f"allowed: {', '.join(OVERRIDE_KEYS)}"
                raise AugmineError(f"{where}: unknown key {k!r}; {hint}")
        strength = override.get("strength", 1.0)
        if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or \
                not math.isfinite(strength) or strength < 0:
            raise AugmineError(f"{where}: strength {strength!r} is not valid; use a number "
                               ">= 0 (0 = no augmentation for this class, 1 = the recipe's)")
        without = override.get("without", [])
        if not isinstance(without, list) or not all(isinstance(w, str) for w in without):
            raise AugmineError(f"{where}: 'without:' must be a list of transform names, e.g. "
                               f"without: [RandomResizedCrop]; got {without!r}")
        for name in without:
            if name not in names:
                hint = did_you_mean(name, sorted(set(names)), cutoff=0.5) or \
                    f"the recipe's transforms: {', '.join(dict.fromkeys(names)) or 'none'}"
                raise AugmineError(f"{where}: without: {name!r} is not in the recipe; {hint}")
        if "why" in override and not isinstance(override["why"], str):
            raise AugmineError(f"{where}: 'why:' must be a sentence (text), got "
                               f"{override['why']!r}")
        if text in out:
            raise AugmineError(f"{where}: given twice; keep one override per class")
        out[text] = dict(override)
    return out


# =========================================================================== transforms
# Recipe entries -> albumentations transforms: the usable transform classes by name, the
# phase size filled into crops, and albumentations' (pydantic's) complaints as one-line
# :class:`~augmine.core.errors.AugmineError` messages naming the file and entry number.
#
# Used by :mod:`augmine.augment.recipes` (checking a recipe when it is loaded),
# :mod:`augmine.augment.compose` (building the Compose) and :mod:`augmine.augment.compose`.

# Keys of a transform entry that belong to augmine, not to albumentations.
META_KEYS = ("transform", "why")
CONTAINERS = ("OneOf", "SomeOf", "Sequential", "OneOrOther", "SelectiveChannelTransform",
              "RandomOrder")
# Transform arguments that the phase size fills in (recipe authors leave them out).
SIZE_ARGS = ("size", "height", "width", "min_height", "min_width", "max_size")


def transform_registry() -> dict[str, type]:
    """Albumentations transform classes usable in a recipe, by class name."""
    import albumentations as A
    from albumentations.core.composition import BaseCompose
    from albumentations.core.serialization import SERIALIZABLE_REGISTRY

    out = {}
    for name, cls in SERIALIZABLE_REGISTRY.items():
        if inspect.isabstract(cls) or name.startswith("_"):
            continue
        if name in ("Compose", "BasicTransform", "DualTransform", "ImageOnlyTransform",
                    "NoOp", "Transform3D", "BaseCompose"):
            continue
        if issubclass(cls, (A.BasicTransform, BaseCompose)):
            out[name] = cls
    return out


def init_params(cls: type) -> list[str]:
    """The names of ``cls``'s constructor arguments (without self, *args, **kwargs)."""
    return [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "args",
                                                                                "kwargs")]


def _size_args(cls: type, size: int) -> dict[str, Any]:
    """The phase-size arguments ``cls`` takes, filled in for output ``size`` (square)."""
    params = init_params(cls)
    args: dict[str, Any] = {}
    if "size" in params:
        args["size"] = (size, size)
    if "height" in params and "width" in params:
        args.update(height=size, width=size)
    if "min_height" in params and "min_width" in params:
        args.update(min_height=size, min_width=size)
    if "max_size" in params:
        args["max_size"] = size
    if args and "pad_if_needed" in params:
        # RandomCrop / CenterCrop: pad inputs smaller than the phase size instead of failing
        args["pad_if_needed"] = True
    return args


def sets_size(transform: str | type) -> bool:
    """True when the albumentations transform (its class, or its name) outputs exactly the
    phase size (crops, Resize); False for others and unknown names."""
    cls = transform_registry().get(transform) if isinstance(transform, str) else transform
    if cls is None:
        return False
    params = init_params(cls)
    return "size" in params or ("height" in params and "width" in params)


class Where:
    """Where an entry is, for error messages: ``my-recipe.yaml: transform 3 (GaussNoise)``."""

    def __init__(self, source: str, number: str, name: str | None = None):
        self.source, self.number, self.name = source, number, name

    def __str__(self) -> str:
        return f"{self.source}: transform {self.number}" + (f" ({self.name})" if self.name else "")


def _format_validation(exc: BaseException) -> str:
    """Albumentations' (pydantic's) complaint as one line: ``arg: message (got value)``."""
    cause = exc.__cause__ or exc.__context__
    if cause is not None and hasattr(cause, "errors"):
        parts = []
        for err in cause.errors(include_url=False):
            loc = ".".join(str(x) for x in err.get("loc", ())) or "arguments"
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            parts.append(f"{loc}: {msg} (got {err.get('input')!r})"
                         if err.get("type") != "missing" else f"{loc}: {msg}")
        return "; ".join(parts)
    return " ".join(str(exc).split())


def to_albu_dict(entry: Any, where: Where, registry: dict[str, type], size: int | None,
                 check: bool) -> dict[str, Any]:
    """One recipe entry -> albumentations' serialized form (``__class_fullname__`` + args).

    ``check``: validate the entry (types, name, ``p``, arguments); ``size``: fill in the
    phase size of crops (None: leave them out).
    """
    if not isinstance(entry, dict):
        raise AugmineError(f"{where}: expected a mapping like 'transform: HorizontalFlip' with "
                           f"'p:' and 'why:', got {entry!r}")
    name = entry.get("transform")
    if check:
        if name is None:
            raise AugmineError(f"{where}: missing 'transform:' (the albumentations class name, "
                               "e.g. 'transform: HorizontalFlip')")
        if not isinstance(name, str) or name not in registry:
            by_case = [n for n in registry if n.lower() == str(name).lower()]
            hint = did_you_mean(name, by_case or registry, n=3, cutoff=0.0 if by_case else 0.6,
                                quote=False, sep=" or ") or (
                "see https://albumentations.ai/docs/ for the transform names")
            raise AugmineError(f"{where}: unknown transform {name!r}; {hint}")
        where.name = name
        if "p" not in entry:
            raise AugmineError(f"{where}: missing 'p:' (the probability to apply it, 0-1); "
                               "albumentations would silently use 0.5")
        if name not in CONTAINERS and "transforms" in entry:
            raise AugmineError(f"{where}: only containers ({', '.join(CONTAINERS[:3])}, ...) take "
                               "'transforms:'; remove it or wrap the transforms in OneOf")
    cls = registry[name]
    args = {k: v for k, v in entry.items() if k not in META_KEYS}
    injected = _size_args(cls, size or 0)
    if check:
        given = [k for k in injected if k in args and k != "pad_if_needed"]
        if given:
            raise AugmineError(f"{where}: remove {', '.join(given)}: the output size comes "
                               "from the training phase (16, 32, 64 px), so one recipe "
                               "serves every phase")
        if "why" in entry and not isinstance(entry["why"], str):
            raise AugmineError(f"{where}: 'why:' must be a sentence (text), got {entry['why']!r}")
        # a transform's own p is albumentations' to check (with its message); a container's not
        check_ranges(entry if name in CONTAINERS else
                     {k: v for k, v in entry.items() if k != "p"}, str(where))
    if size is not None:
        for k, v in injected.items():
            args.setdefault(k, v)
    if name in CONTAINERS:
        children = entry.get("transforms")
        if check and (not isinstance(children, list) or not children):
            raise AugmineError(f"{where}: a {name} needs a non-empty 'transforms:' list")
        args["transforms"] = [
            to_albu_dict(child, Where(where.source, f"{where.number}.{i}"), registry, size,
                         check)
            for i, child in enumerate(children, 1)]
    return {"__class_fullname__": name, **args}


def instantiate(albu: dict[str, Any], where: Where):
    """Build one transform from its serialized form via ``A.from_dict``; errors -> one line."""
    import albumentations as A

    albu = dict(albu, strict=True) if albu["__class_fullname__"] not in CONTAINERS else albu
    if "transforms" in albu:
        # containers: build children one by one so an error names the right child
        kids = albu["transforms"]
        children = [instantiate(k, Where(where.source, f"{where.number}.{i}",
                                         k["__class_fullname__"]))
                    for i, k in enumerate(kids, 1)]
        cls = transform_registry()[albu["__class_fullname__"]]
        args = {k: v for k, v in albu.items() if k not in ("__class_fullname__", "transforms")}
        try:
            return cls(children, **args)
        except (TypeError, ValueError) as exc:
            raise AugmineError(f"{where}: {_format_validation(exc)}; fix the value "
                               "(albumentations' check)") from None
    try:
        return A.from_dict({"transform": albu})
    except (TypeError, ValueError) as exc:
        msg = _format_validation(exc)
        if "are not valid for transform" in msg:
            cls = transform_registry()[albu["__class_fullname__"]]
            params = [p for p in init_params(cls) if p not in SIZE_ARGS]
            bad = [k for k in albu if k not in params and k not in (
                "__class_fullname__", "strict", "p") and k not in SIZE_ARGS + ("pad_if_needed",)]
            hints = []
            for k in bad:
                hint = did_you_mean(k, params)
                hints.append(f"{k!r}" + (f" ({hint})" if hint else ""))
            raise AugmineError(f"{where}: unknown argument {', '.join(hints)}; "
                               f"{where.name} takes {', '.join(params)}") from None
        raise AugmineError(f"{where}: {msg}; fix the value (albumentations' check)") from None


# =========================================================================== recipes

RECIPE_KEYS = ("name", "description", "transforms", "classes")
# Size of the small random image every recipe is tried on when it is loaded.
_SMOKE_SIZE = 24


@dataclass
class Recipe:
    """A loaded, validated recipe.

    ``transforms``: the entries as written in the file (dicts with ``transform``, ``p``,
    ``why`` and the non-default arguments; containers keep their nested ``transforms``).
    ``classes``: per-class overrides as written (``{class id or name: {strength, without,
    why}}``), resolved against a dataset by :func:`augmine.augment.compose.class_overrides`.
    ``strength``: set by :func:`augmine.augment.compose.scale_recipe`, whose result keeps
    the recipe as written in ``origin`` (so class strengths multiply the phase's strength
    exactly, see :func:`augmine.augment.compose.recipe_for_class`).
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
    :func:`augmine.core.runtime.resolve_recipe`).

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
