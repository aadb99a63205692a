"""Recipe strength: :func:`scale_recipe` moves every probability and magnitude of a recipe
toward "no augmentation" (strength 0) or beyond it (> 1), by augmine's own rules."""

from __future__ import annotations

import copy
import inspect
import numbers
import os
from typing import Any

from augmine.core.errors import AugmineError
from augmine.augment.recipes import Recipe, as_recipe, parse_recipe
from augmine.augment.transforms import (META_KEYS, SIZE_ARGS, init_params, sets_size,
                                        transform_registry)

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

