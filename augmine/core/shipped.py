"""The files augmine ships beside its modules: the built-in recipes and training configs
(the checkout's top-level ``recipes/``) and the Streamlit app (``apps/``).

The one owner of where they are and of finding a built-in by name
(:func:`resolve_recipe`, :func:`resolve_config`, :func:`available_recipes`,
:func:`available_configs`). An installed wheel carries them as the packages
``augmine.builtin`` and ``augmine.apps`` (``setup.cfg``'s ``package_dir`` maps the two
top-level folders there), and an editable install maps the same names onto the checkout's
folders; a checkout that is only on ``sys.path`` (no install) finds them beside the
``augmine/`` folder.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from augmine.core.naming import did_you_mean
from augmine.core.errors import AugmineError

# the checkout's top level: augmine/core/shipped.py -> augmine/core -> augmine -> checkout
_CHECKOUT = Path(__file__).resolve().parents[2]


def _shipped(package: str, folder: str) -> Path:
    """The folder of ``package`` (``augmine.builtin`` / ``augmine.apps``) when installed,
    else the checkout's ``folder``."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    return _CHECKOUT / folder


def recipes_dir() -> Path:
    """The folder of built-in recipes and training configs (``recipes/`` in a checkout)."""
    return _shipped("augmine.builtin", "recipes")


def app_file() -> Path:
    """The Streamlit script ``augmine app`` hands to ``streamlit run``
    (``apps/streamlit_app.py`` in a checkout)."""
    return _shipped("augmine.apps", "apps") / "streamlit_app.py"


# --------------------------------------------------------------------------- built-ins by name

_UNREADABLE = object()


def _yaml_doc(path: Path):
    """The parsed YAML of ``path``, or ``_UNREADABLE``."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return _UNREADABLE


def _is_recipe_doc(doc) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("transforms"), list)


def is_recipe_file(path: str | os.PathLike) -> bool:
    """True for an augmentation recipe (a YAML mapping with a ``transforms:`` list); False
    for training configs, other YAML and unreadable files."""
    return _is_recipe_doc(_yaml_doc(Path(path)))


def _builtin_kinds() -> dict[str, str]:
    """{name: "recipe" | "config"} for the YAML files in :func:`recipes_dir`: a recipe has a
    ``transforms:`` list, any other readable YAML file is a training config."""
    folder = recipes_dir()
    out = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
        doc = _yaml_doc(path)
        if doc is not _UNREADABLE:
            out[path.stem] = "recipe" if _is_recipe_doc(doc) else "config"
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
    if stem in known:
        return f"the built-in {what} is named {stem!r}: give the name alone"
    return (did_you_mean(stem, known, n=3, cutoff=0.5, quote=False)
            or f"built-in {what}s: {', '.join(known) or 'none'}")


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
