"""What a feed calls per image: a recipe at a strength (:func:`scale_recipe`), the recipe one
class gets from its ``classes:`` overrides, and the ``albumentations.Compose`` built from
them (the phase size filled in, a final resize, independent seeds per transform, the
``A.save`` export).
"""

from __future__ import annotations

import copy
import inspect
import numbers
import os
from pathlib import Path
from typing import Any, Sequence

from augmine.augment.recipes import (as_recipe, init_params, instantiate, META_KEYS, parse_recipe,
                                     Recipe, sets_size, SIZE_ARGS, to_albu_dict,
                                     transform_registry, Where)
from augmine.core.errors import AugmineError


# =========================================================================== strength
# Recipe strength: :func:`scale_recipe` moves every probability and magnitude of a recipe
# toward "no augmentation" (strength 0) or beyond it (> 1), by augmine's own rules.

# The largest strength a training phase may name: at 10 a transform written at p 0.1 fires on
# every image (``min(1, p*s)``) and most ranges sit at their clipping bounds below, so
# higher values mostly mean a typo (``40`` for ``0.4``).
MAX_STRENGTH = 10.0

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
    # clipped to checks.SANITY_BOUNDS, so a strong scaling stays a loadable recipe
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
        return _SCALE_RULES["crop"] if sets_size(cls) else _SCALE_RULES.get(cls.__name__)
    if arg == "ratio" and sets_size(cls):
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
    keep_p = float(entry["p"]) >= 1.0 and sets_size(cls)
    if not keep_p:
        out["p"] = round(min(1.0, float(entry["p"]) * s), 6)
    defaults = inspect.signature(cls.__init__).parameters
    for arg in init_params(cls):
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
    registry = transform_registry()
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


# =========================================================================== overrides
# Per-class recipe overrides: a recipe's ``classes:`` matched to a dataset's classes, and
# the recipe one class is augmented with (transforms left out, strength scaled).

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


# =========================================================================== compose

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
    registry = transform_registry()
    source = str(recipe.path or recipe.name)
    transforms = []
    for i, entry in enumerate(recipe.transforms, 1):
        where = Where(source, str(i), entry.get("transform"))
        transforms.append(instantiate(to_albu_dict(entry, where, registry, size, check=False),
                                      where))
    last = recipe.transforms[-1] if recipe.transforms else None
    if not (last and float(last["p"]) >= 1.0 and sets_size(registry[last["transform"]])):
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
