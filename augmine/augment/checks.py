"""Checks on recipe values that albumentations does not make (used by :mod:`augmine.augment.recipes`
when a recipe is loaded; pure functions over the entries as written).

- Sanity bounds (:data:`SANITY_BOUNDS`): albumentations accepts arguments that make no sense,
  e.g. ``RandomBrightnessContrast: brightness_limit: 2.0`` (beyond the whole brightness
  scale) or a ``OneOf`` with ``p: 2``; such a value is a one-line error naming the entry,
  the argument and the range to use.
- Class overrides (``classes:``): their structure, and that every transform ``without:``
  names is in the recipe. Which dataset class a key means is only known with a dataset
  (:func:`augmine.augment.overrides.class_overrides`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterator, Mapping, Sequence

from augmine.core.errors import AugmineError
from augmine.core.naming import did_you_mean

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
