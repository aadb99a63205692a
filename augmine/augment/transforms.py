"""Recipe entries -> albumentations transforms: the usable transform classes by name, the
phase size filled into crops, and albumentations' (pydantic's) complaints as one-line
:class:`~augmine.core.errors.AugmineError` messages naming the file and entry number.

Used by :mod:`augmine.augment.recipes` (checking a recipe when it is loaded),
:mod:`augmine.augment.compose` (building the Compose) and :mod:`augmine.augment.strength`.
"""

from __future__ import annotations

import inspect
from typing import Any

from augmine.core.naming import did_you_mean
from augmine.core.errors import AugmineError
from augmine.augment.checks import check_ranges

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

