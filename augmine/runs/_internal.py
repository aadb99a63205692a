"""Shared pieces of the config schema (:mod:`augmine.runs.sections`, :mod:`augmine.runs.config`):
value checks with one-line messages, recipe and ``module:function`` resolution, the section
base class."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo

from augmine.core.naming import did_you_mean
from augmine.core.errors import AugmineError


def _whole(value, minimum: int = 1, what: str = "value"):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not math.isfinite(value)) or \
            int(value) != value or value < minimum:
        raise ValueError(f"{value!r} is not a valid {what}; use a whole number >= {minimum}")
    return int(value)


def _number(value, minimum: float = 0.0, strict: bool = False, below: float | None = None):
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and \
        math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if ok and below is not None and value >= below:
        raise ValueError(f"{value!r} must be below {below}")
    if not ok:
        raise ValueError(f"{value!r} is not valid; use a number "
                         f"{'>' if strict else '>='} {minimum}")
    return float(value)


def _choice(value, choices) -> str:
    text = str(value).lower()
    if text not in choices:
        hint = did_you_mean(text, choices) or f"choose one of {', '.join(choices)}"
        raise ValueError(f"{value!r} is unknown; {hint}")
    return text


def _Whole(minimum: int, what: str):
    return Annotated[int, BeforeValidator(partial(_whole, minimum=minimum, what=what))]


def _Number(minimum: float = 0.0, strict: bool = False, below: float | None = None):
    return Annotated[float, BeforeValidator(partial(_number, minimum=minimum, strict=strict,
                                                    below=below))]


def _unknown_key(key, allowed) -> str:
    hint = did_you_mean(key, allowed) or f"known keys: {', '.join(allowed)}"
    return f"unknown key {key!r}; {hint}"


def _resolve_recipe(name, base_dir: Path | None, book=None) -> str:
    """A recipe path: relative to the config file first, then a name in ``recipes/``;
    validated in full now, before anything trains (kept in ``book``, a
    :class:`~augmine.augment.recipes.RecipeBook`, when given)."""
    from augmine.augment.recipes import load_recipe
    from augmine.core.shipped import resolve_recipe

    if not isinstance(name, str) or not name.strip():
        raise ValueError("'recipe' must name a recipe file, e.g. light.yaml")
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).is_file():
        path = base_dir / path
    elif not path.is_file():
        try:
            path = Path(resolve_recipe(name))
        except AugmineError as exc:
            raise ValueError(f"recipe {name!r} not found next to the config or in "
                             f"recipes/ ({exc})") from None
    try:
        book.load(path) if book is not None else load_recipe(path)
    except AugmineError as exc:
        raise ValueError(str(exc)) from None
    return str(path.resolve())


def _recipe_in_context(value, info: ValidationInfo):
    ctx = info.context or {}
    if value is None or not ctx.get("check_recipes", True):
        return None if value is None else str(value)
    return _resolve_recipe(value, ctx.get("base_dir"), ctx.get("recipes"))


def _builtin_recipe_in_context(value, info: ValidationInfo):
    """As :func:`_recipe_in_context`, but a built-in recipe given by its bare name keeps that
    name (as the schema's default does), so a config reads the same with it written out or
    left out."""
    from augmine.core.shipped import recipes_dir

    resolved = _recipe_in_context(value, info)
    if resolved is not None and Path(value).name == value and \
            Path(resolved).parent == recipes_dir().resolve():
        return value
    return resolved


def _object_in_context(value, info: ValidationInfo):
    """A ``package.module:function`` name, imported now (the config's folder first, see
    :func:`~augmine.core.runtime.find_object`) unless the config is a run's record."""
    from augmine.core.runtime import find_object

    ctx = info.context or {}
    if value is not None and ctx.get("check_recipes", True):
        find_object(value, ctx.get("base_dir"))
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=False)

    def options(self) -> dict:
        """The keys set in this section (None values left out), as a plain dict."""
        return self.model_dump(exclude_none=True)
