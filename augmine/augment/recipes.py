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
(:data:`augmine.augment.checks.SANITY_BOUNDS`), class overrides (:func:`class_overrides`,
:func:`recipe_for_class`), and one-line :class:`~augmine.core.errors.AugmineError` messages that
name the file, the entry number and the fix.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from augmine.core.shipped import recipes_dir
from augmine.core.errors import AugmineError
from augmine.augment.checks import check_class_overrides, check_ranges, transform_names

RECIPE_KEYS = ("name", "description", "transforms", "classes")
# Keys of a transform entry that belong to augmine, not to albumentations.
META_KEYS = ("transform", "why")
CONTAINERS = ("OneOf", "SomeOf", "Sequential", "OneOrOther", "SelectiveChannelTransform",
              "RandomOrder")
# Transform arguments that the phase size fills in (recipe authors leave them out).
SIZE_ARGS = ("size", "height", "width", "min_height", "min_width", "max_size")
# Size of the small random image every recipe is tried on when it is loaded.
_SMOKE_SIZE = 24


@dataclass
class Recipe:
    """A loaded, validated recipe.

    ``transforms``: the entries as written in the file (dicts with ``transform``, ``p``,
    ``why`` and the non-default arguments; containers keep their nested ``transforms``).
    ``classes``: per-class overrides as written (``{class id or name: {strength, without,
    why}}``), resolved against a dataset by :func:`class_overrides`. ``strength``: set by
    :func:`scale_recipe`, whose result keeps the recipe as written in ``origin`` (so class
    strengths multiply the phase's strength exactly, see :func:`recipe_for_class`).
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


# --------------------------------------------------------------------------- locating



def _builtin_kinds() -> dict[str, str]:
    """{name: "recipe" | "config"} for the YAML files in :func:`recipes_dir`: a recipe has a
    ``transforms:`` list, anything else is a training config."""
    import yaml

    folder = recipes_dir()
    out = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        is_recipe = isinstance(doc, dict) and isinstance(doc.get("transforms"), list)
        out[path.stem] = "recipe" if is_recipe else "config"
    return out


def available_recipes() -> list[str]:
    """Names of the built-in augmentation recipes (without ``.yaml``), e.g. ``light``."""
    return [name for name, kind in _builtin_kinds().items() if kind == "recipe"]


def available_configs() -> list[str]:
    """Names of the built-in training configs (without ``.yaml``), e.g. ``cpu-small``."""
    return [name for name, kind in _builtin_kinds().items() if kind == "config"]


def _builtin_file(path: Path) -> Path | None:
    """The built-in file a bare name (``light``, ``light.yaml``) means, or None."""
    if len(path.parts) != 1:
        return None
    for cand in (recipes_dir() / path.name, recipes_dir() / f"{path.name}.yaml"):
        if cand.is_file():
            return cand.resolve()
    return None


def _not_found_hint(stem: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(stem, known, n=3, cutoff=0.5)
    if stem in known:
        return f"the built-in {what} is named {stem!r}: give the name alone"
    return (f"did you mean {', '.join(close)}?" if close
            else f"built-in {what}s: {', '.join(known) or 'none'}")


def resolve_recipe(name_or_path: str | os.PathLike) -> Path:
    """A recipe path from a path or a bare built-in name (``light``, ``light.yaml``).

    Existing files win over built-in names; raises a one-line :class:`AugmineError` with
    close built-in names when neither exists.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():
        raise AugmineError(f"{path} is a folder; give a recipe file (.yaml)")
    found = _builtin_file(path)
    if found is not None:
        return found
    hint = _not_found_hint(path.stem, available_recipes(), "recipe")
    raise AugmineError(f"recipe {str(name_or_path)!r} not found (no such file, and no "
                       f"{path.stem}.yaml in {recipes_dir()}); {hint}")


def resolve_config(name_or_path: str | os.PathLike) -> Path:
    """A training config path from a path or a bare built-in name (``cpu-small``,
    ``tiny-imagenet-densenet.yaml``), so ``augmine train cpu-small --run-dir runs/small``
    works from any folder.

    Existing files win over built-in names; raises a one-line :class:`AugmineError` listing
    close built-in config names when neither exists.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.resolve()
    if path.is_dir():
        raise AugmineError(f"{path} is a folder; give a training config file (.yaml) or the "
                           "name of a built-in one")
    found = _builtin_file(path)
    if found is not None and found.stem in available_configs():
        return found
    if found is not None:
        raise AugmineError(f"{found.stem!r} is an augmentation recipe, not a training config; "
                           f"built-in configs: {', '.join(available_configs()) or 'none'}")
    hint = _not_found_hint(path.stem, available_configs(), "config")
    raise AugmineError(f"training config {str(name_or_path)!r} not found (no such file, and "
                       f"no built-in config of that name); {hint}")


# --------------------------------------------------------------------------- albumentations

def _registry() -> dict[str, type]:
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


def _init_params(cls: type) -> list[str]:
    return [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "args",
                                                                                "kwargs")]


def _size_args(cls: type, size: int) -> dict[str, Any]:
    """The phase-size arguments ``cls`` takes, filled in for output ``size`` (square)."""
    params = _init_params(cls)
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


def _sets_size(cls: type) -> bool:
    """True for transforms whose output is exactly (size, size) (crops and Resize)."""
    params = _init_params(cls)
    return "size" in params or ("height" in params and "width" in params)


def sets_size(transform: str) -> bool:
    """True when the albumentations transform named ``transform`` outputs exactly the phase
    size (crops, Resize); False for others and unknown names."""
    cls = _registry().get(transform)
    return cls is not None and _sets_size(cls)


class _Where:
    """Where an entry is, for error messages:
    ``recipes/light.yaml: transform 3 (RandomBrightnessContrast)``."""

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


def _to_albu_dict(entry: Any, where: _Where, registry: dict[str, type], size: int | None,
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
            close = difflib.get_close_matches(str(name), list(registry), n=3, cutoff=0.6)
            by_case = [n for n in registry if n.lower() == str(name).lower()]
            close = by_case or close
            hint = f"did you mean {' or '.join(close)}?" if close else (
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
            _to_albu_dict(child, _Where(where.source, f"{where.number}.{i}"), registry, size,
                          check)
            for i, child in enumerate(children, 1)]
    return {"__class_fullname__": name, **args}


def _instantiate(albu: dict[str, Any], where: _Where):
    """Build one transform from its serialized form via ``A.from_dict``; errors -> one line."""
    import albumentations as A

    albu = dict(albu, strict=True) if albu["__class_fullname__"] not in CONTAINERS else albu
    if "transforms" in albu:
        # containers: build children one by one so an error names the right child
        kids = albu["transforms"]
        children = [_instantiate(k, _Where(where.source, f"{where.number}.{i}",
                                           k["__class_fullname__"]))
                    for i, k in enumerate(kids, 1)]
        cls = _registry()[albu["__class_fullname__"]]
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
            cls = _registry()[albu["__class_fullname__"]]
            params = [p for p in _init_params(cls) if p not in SIZE_ARGS]
            bad = [k for k in albu if k not in params and k not in (
                "__class_fullname__", "strict", "p") and k not in SIZE_ARGS + ("pad_if_needed",)]
            hints = []
            for k in bad:
                close = difflib.get_close_matches(k, params, n=1, cutoff=0.6)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise AugmineError(f"{where}: unknown argument {', '.join(hints)}; "
                               f"{where.name} takes {', '.join(params)}") from None
        raise AugmineError(f"{where}: {msg}; fix the value (albumentations' check)") from None


# --------------------------------------------------------------------------- loading

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
            close = difflib.get_close_matches(str(key), RECIPE_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(RECIPE_KEYS)}"
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
    registry = _registry()
    for i, entry in enumerate(transforms, 1):
        where = _Where(source, str(i))
        _instantiate(_to_albu_dict(entry, where, registry, _SMOKE_SIZE, check=True), where)
    _smoke_test(recipe, source)
    recipe.classes = copy.deepcopy(check_class_overrides(data.get("classes"),
                                                         transform_names(transforms), source))
    return recipe


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and fully validate a recipe file (or a built-in name, see :func:`resolve_recipe`).

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


def _smoke_test(recipe: Recipe, source: str) -> None:
    """Apply every entry at p=1 to a small odd-sized image: catch transforms that need other
    inputs (boxes, masks) or change dtype/channels, with the entry number."""
    import numpy as np

    registry = _registry()
    img = np.random.default_rng(0).integers(0, 256, (_SMOKE_SIZE + 5, _SMOKE_SIZE + 3, 3),
                                            dtype=np.uint8)
    for i, entry in enumerate(recipe.transforms, 1):
        where = _Where(source, str(i), entry.get("transform"))
        albu = _to_albu_dict(dict(entry, p=1.0), where, registry, _SMOKE_SIZE, check=False)
        t = _instantiate(albu, where)
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


# --------------------------------------------------------------------------- building

def build_compose(recipe: Recipe | str | os.PathLike, size: int, seed: int | None = None):
    """An ``albumentations.Compose`` that turns any RGB uint8 image into (size, size, 3) uint8.

    ``recipe``: a :class:`Recipe`, a path or a built-in name. Crops get ``size`` injected;
    a final ``A.Resize(size, size)`` (INTER_AREA when shrinking) is appended unless the
    last transform already sets the size with p=1. ``seed`` makes the Compose reproducible.
    Build it once (per worker) and call it per image: ``compose(image=img)["image"]``.
    """
    import albumentations as A

    if not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 1:
        raise AugmineError(f"image size {size!r} is not a positive whole number of pixels")
    size = int(size)
    recipe = as_recipe(recipe)
    registry = _registry()
    source = str(recipe.path or recipe.name)
    transforms = []
    for i, entry in enumerate(recipe.transforms, 1):
        where = _Where(source, str(i), entry.get("transform"))
        transforms.append(_instantiate(_to_albu_dict(entry, where, registry, size, check=False),
                                       where))
    last = recipe.transforms[-1] if recipe.transforms else None
    if not (last and float(last["p"]) >= 1.0 and _sets_size(registry[last["transform"]])):
        transforms.append(A.Resize(size, size, area_for_downscale="image", p=1.0))
    compose = A.Compose(transforms)
    if seed is not None:
        reseed_compose(compose, seed)
    return compose


def reseed_compose(compose, seed: int | None) -> None:
    """Give every transform of ``compose`` its own random stream derived from ``seed``.

    albumentations 2.0.8's ``Compose(seed=s)`` / ``set_random_seed(s)`` seeds every transform
    with the same ``s``, so transforms with equal ``p`` fire together (HorizontalFlip and
    VerticalFlip at p=0.5 always both or neither); hand-written because no library call
    seeds them independently. ``seed=None`` draws fresh entropy.
    """
    import numpy as np
    from albumentations.core.composition import BaseCompose

    nodes = []

    def walk(node):
        nodes.append(node)
        if isinstance(node, BaseCompose):    # ColorJitter's ``transforms`` are plain functions
            for child in node.transforms:
                walk(child)

    walk(compose)
    states = np.random.SeedSequence(seed).generate_state(len(nodes))
    for node, s in zip(nodes, states):       # pre-order: a parent's seeding is overridden below
        node.set_random_seed(int(s))


# --------------------------------------------------------------------------- strength

# Rules of :func:`scale_recipe`, by argument name: (family, lower bound, upper bound, whole
# numbers). Families: "zero" (identity 0: x*s), "one" (identity 1: 1 + (x-1)*s), "gamma"
# (identity 100: 100 + (x-100)*s), "quality" (identity 100: 100 - (100-x)*s), "area" (crop
# area, identity the full frame: 1 - (1-x)*s), "ratio" (crop aspect, identity 1:
# x**s). Bounds clip the result (None: unbounded).
_ZERO = {name: ("zero", None, None, False) for name in (
    "brightness_limit", "contrast_limit", "rotate", "limit", "rotate_limit", "shear",
    "translate_percent", "shift_limit", "shift_limit_x", "shift_limit_y", "scale_limit",
    "mean_range", "hue", "distort_limit")}
STRENGTH_RULES: dict[str, tuple[str, float | None, float | None, bool]] = {
    **_ZERO,
    # clipped to recipe_checks.SANITY_BOUNDS, so a strong scaling stays a loadable recipe
    "brightness_limit": ("zero", -1.0, 1.0, False),
    "contrast_limit": ("zero", -1.0, 1.0, False),
    "translate_percent": ("zero", -1.0, 1.0, False),
    "hue": ("zero", -0.5, 0.5, False),
    "hue_shift_limit": ("zero", -180, 180, False),
    "sat_shift_limit": ("zero", -255, 255, False),
    "val_shift_limit": ("zero", -255, 255, False),
    "r_shift_limit": ("zero", -255, 255, False),
    "g_shift_limit": ("zero", -255, 255, False),
    "b_shift_limit": ("zero", -255, 255, False),
    "translate_px": ("zero", None, None, True),
    "std_range": ("zero", 0.0, 1.0, False),
    "alpha": ("zero", 0.0, 1.0, False),
    "strength": ("zero", 0.0, None, False),
    "hole_height_range": ("zero", 0.0, 1.0, False),
    "hole_width_range": ("zero", 0.0, 1.0, False),
    "sigma_limit": ("zero", 0.01, None, False),
    "lightness": ("one", 0.0, None, False),
    "brightness": ("one", 0.0, None, False),
    "contrast": ("one", 0.0, None, False),
    "saturation": ("one", 0.0, None, False),
    "scale_range": ("one", 0.01, 1.0, False),
    "clip_limit": ("one", 1.0, None, False),
    "gamma_limit": ("gamma", 1.0, None, False),
    "quality_range": ("quality", 1, 100, True),
}
# Discrete arguments deliberately left as written (kernel sizes, counts, modes, fills).
_AS_WRITTEN = ("blur_limit", "num_holes_range", "border_mode", "interpolation",
               "mask_interpolation", "fill", "fill_mask", "tile_grid_size", "kernel_size",
               "sigma", "num_output_channels", "noise_scale_factor")
# ``scale`` means different things: a crop's area fraction, Affine's zoom, Perspective's
# distortion.
_SCALE_RULES = {"crop": ("area", 0.01, 1.0, False), "Affine": ("one", 0.01, None, False),
                "Perspective": ("zero", 0.0, None, False)}


def _strength_rule(cls: type, arg: str):
    if arg == "scale":
        return _SCALE_RULES["crop"] if _sets_size(cls) else _SCALE_RULES.get(cls.__name__)
    if arg == "ratio" and _sets_size(cls):
        return ("ratio", 0.01, None, False)
    return STRENGTH_RULES.get(arg)


def _scale_value(value: Any, rule, s: float) -> Any:
    """``value`` (a number, a list/tuple of them, or a {x, y} mapping) under ``rule``."""
    import math

    if isinstance(value, dict):
        return {k: _scale_value(v, rule, s) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scale_value(v, rule, s) for v in value]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    family, lo, hi, whole = rule
    x = float(value)
    y = {"zero": lambda: x * s, "one": lambda: 1 + (x - 1) * s,
         "gamma": lambda: 100 + (x - 100) * s, "quality": lambda: 100 - (100 - x) * s,
         "area": lambda: 1 - (1 - x) * s,
         "ratio": lambda: math.exp(math.log(x) * s) if x > 0 else x}[family]()
    y = max(lo, y) if lo is not None else y
    y = min(hi, y) if hi is not None else y
    return int(round(y)) if whole else round(y, 6)


def _scale_entry(entry: dict[str, Any], s: float, registry: dict[str, type],
                 unscaled: list[str]) -> dict[str, Any]:
    cls = registry[entry["transform"]]
    out = dict(entry)
    keep_p = float(entry["p"]) >= 1.0 and _sets_size(cls)
    if not keep_p:
        out["p"] = round(min(1.0, float(entry["p"]) * s), 6)
    defaults = inspect.signature(cls.__init__).parameters
    for arg in _init_params(cls):
        if arg in ("p", "transforms") or arg in META_KEYS:
            continue
        rule = _strength_rule(cls, arg)
        value = entry.get(arg, defaults[arg].default)
        if value is None or value is inspect.Parameter.empty:
            continue
        if rule is None:
            if arg in entry and isinstance(value, (numbers.Real, list, tuple)) and \
                    not isinstance(value, bool) and arg not in SIZE_ARGS + _AS_WRITTEN:
                unscaled.append(f"{entry['transform']}.{arg}")
            continue
        out[arg] = _scale_value(value, rule, s)
    if "transforms" in entry:
        out["transforms"] = [_scale_entry(child, s, registry, unscaled)
                             for child in entry["transforms"]]
    return out


def scale_recipe(recipe: Recipe | str | os.PathLike, strength: float) -> Recipe:
    """``recipe`` at ``strength``: 0 = no augmentation, 1 = as written, between and above
    scale every probability and magnitude range.

    albumentations has no such knob; this rule is augmine's own (``s`` = strength, ``x`` =
    each number of a range as written, or the transform's default when the recipe leaves
    the argument out; results clipped to the bounds in ``STRENGTH_RULES``):

    ====================================  =================================  ================
    arguments                             rule                               identity (s=0)
    ====================================  =================================  ================
    ``p``                                 ``min(1, p*s)``; a crop/resize     never applied
                                          at p=1 keeps p=1 (it sets the size)
    crop ``scale`` (RandomResizedCrop)    ``1 - (1-x)*s`` (toward full frame)  whole frame
    crop ``ratio``                        ``x**s`` (toward square)           aspect 1
    shifts, limits and amounts around 0:  ``x*s``                            0
    brightness/contrast_limit, hue/sat/
    val_shift_limit, r/g/b_shift_limit,
    rotate, limit, rotate_limit, shear,
    translate_percent/px, shift_limit,
    scale_limit, std_range, mean_range,
    alpha, strength, hole_height/
    width_range, sigma_limit (>= 0.01),
    Perspective ``scale``, ColorJitter hue
    factors around 1: Affine ``scale``,   ``1 + (x-1)*s``                    1
    lightness, ColorJitter brightness/
    contrast/saturation, scale_range,
    clip_limit (CLAHE, >= 1)
    ``gamma_limit``                       ``100 + (x-100)*s``                100 (gamma 1)
    ``quality_range``                     ``100 - (100-x)*s`` (whole, 1-100)  100
    everything else (kernel sizes,        as written                         -
    hole counts, modes, fills, grids)
    ====================================  =================================  ================

    Containers' ``p`` and their children follow the same rules (a OneOf normalises its
    children's p, so there only the container's p matters). Strength 0 returns a recipe
    with no transforms (identical batches to ``none``: the crop rule's limit would still
    centre-crop non-square images). Returns a new :class:`Recipe` named ``name@s`` with
    ``strength`` set; the result is validated like a file (:func:`parse_recipe`), so a
    strength that pushes a value out of albumentations' range is a one-line error. The
    result keeps the recipe's ``classes`` and the recipe as written (``origin``); scaling
    a scaled recipe scales that origin by the product of the strengths.
    """
    recipe = as_recipe(recipe)
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or \
            not 0 <= float(strength) < float("inf"):
        raise AugmineError(f"strength {strength!r}: use a number >= 0 (0 = no augmentation, "
                           "1 = the recipe as written)")
    if float(strength) == 1.0:
        return recipe
    base = recipe.origin or recipe
    s = float(strength) * (recipe.strength if recipe.origin is not None else 1.0)
    if s == 1.0:
        return base
    name = f"{base.name}@{s:g}"
    if s == 0.0:
        return Recipe(name=name, description=f"{base.name} at strength 0: no augmentation",
                      path=base.path, transforms=[], strength=0.0,
                      classes=copy.deepcopy(base.classes), origin=base)
    registry = _registry()
    unscaled: list[str] = []
    transforms = [_scale_entry(e, s, registry, unscaled) for e in base.transforms]
    scaled = parse_recipe({"name": name, "description": base.description,
                           "transforms": transforms},
                          f"{base.path or base.name} at strength {s:g}", base.path)
    scaled.strength, scaled.origin = s, base
    scaled.classes = copy.deepcopy(base.classes)
    if unscaled:
        scaled.description += f" (not scaled by strength: {', '.join(sorted(set(unscaled)))})"
    return scaled


# --------------------------------------------------------------------------- classes

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


def recipe_to_albumentations(recipe: Recipe | str | os.PathLike, size: int) -> dict[str, Any]:
    """The albumentations serialization (``A.to_dict``) of :func:`build_compose` at ``size``."""
    import albumentations as A

    return A.to_dict(build_compose(recipe, size))


def export_recipe(recipe: Recipe | str | os.PathLike, out: str | os.PathLike, size: int = 64,
                  data_format: str | None = None) -> Path:
    """Write the recipe at phase ``size`` as an ``A.save`` file that ``A.load`` reads back.

    ``data_format``: "json" or "yaml"; by default from the suffix of ``out`` (.yaml/.yml ->
    yaml, anything else -> json). The file is written atomically; returns its path.
    """
    import albumentations as A

    from augmine.core.atomic import atomic_path

    out = Path(out)
    if data_format is None:
        data_format = "yaml" if out.suffix.lower() in (".yaml", ".yml") else "json"
    if data_format not in ("json", "yaml"):
        raise AugmineError(f"export format {data_format!r}: choose json or yaml")
    compose = build_compose(recipe, size)
    with atomic_path(out) as tmp:
        A.save(compose, str(tmp), data_format=data_format)
    return out


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
