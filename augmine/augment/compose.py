"""Recipes -> the ``albumentations.Compose`` a feed calls per image: the phase size filled
in, a final resize, independent seeds per transform, and the ``A.save`` export."""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any

from augmine.core.errors import AugmineError
from augmine.augment.recipes import Recipe, as_recipe
from augmine.augment.transforms import (Where, instantiate, sets_size, to_albu_dict,
                                        transform_registry)


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
