"""The process and its surroundings: quiet/verbose switches and quiet lazy imports of the
heavy libraries, the files augmine ships beside its modules (built-in recipes, training
configs, the Streamlit app), and the ``augmine`` command lines printed for the user to run
next.

TensorFlow prints pages of C++ and absl start-up lines; augmine hides them unless the
user asks for ``--verbose``. Import TensorFlow through :func:`import_tensorflow` so the
switch applies wherever it is first imported.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shlex
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from augmine.core.errors import AugmineError
from augmine.core.naming import did_you_mean


_verbose = False
_tf_ready = False


def set_verbose(verbose: bool) -> None:
    """Show (True) or hide (False, the default) TensorFlow's start-up log and augmine's info lines."""
    global _verbose
    _verbose = verbose
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    logging.getLogger("augmine").setLevel(logging.INFO if verbose else logging.WARNING)


def is_verbose() -> bool:
    return _verbose


@contextlib.contextmanager
def _stderr_captured():
    """Send the process's stderr (file descriptor 2) to a temporary file for a while.

    TensorFlow 2.21 prints its C++ start-up lines (oneDNN notes, "could not find cuda
    drivers", a failed cuInit) before absl logging is initialised, ignoring
    ``TF_CPP_MIN_LOG_LEVEL``; only the file descriptor can hold them back. The text is
    replayed if the import fails, so a real error is never hidden.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            tmp.seek(0)
            sys.stderr.write(tmp.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow():
    """Import and return ``tensorflow``, its start-up log hidden unless verbose.

    Import TensorFlow (and Keras, which imports it) through this function or
    :func:`import_keras` so the quiet default applies wherever it is first imported.
    """
    global _tf_ready
    if _tf_ready or _verbose:
        import tensorflow as tf

        _tf_ready = True
        return tf
    with _stderr_captured():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")   # the CUDA probe prints here, once
    tf.get_logger().setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with tensorflow
        pass
    _tf_ready = True
    return tf


def progress_bar(iterable=None, *, progress: bool = True, desc: str, unit: str = "it",
                 total=None, line: str | None = None, **tqdm_args):
    """A tqdm bar (used as tqdm is: iterated, ``update``d, in a ``with``) drawn on stderr only
    when ``progress`` and stderr is a terminal. In a pipe or a log file, where a bar's
    carriage returns are noise, it draws nothing and prints one ``line`` instead (default
    ``"<desc>: <total> <unit>"``); nothing at all when not ``progress``."""
    from tqdm.auto import tqdm

    terminal = bool(progress) and sys.stderr.isatty()
    if progress and not terminal:
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        if line is None:
            amount = "" if total is None else f" {total} {unit}" if not tqdm_args.get(
                "unit_scale") else " " + tqdm.format_sizeof(
                    total, unit, tqdm_args.get("unit_divisor", 1000))
            line = f"{desc}:{amount}" if amount else desc
        print(line, file=sys.stderr, flush=True)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not terminal, **tqdm_args)


def keras_backend() -> str:
    """The Keras backend this process will use, without importing Keras.

    Keras reads ``KERAS_BACKEND`` first, then ``backend`` in ``$KERAS_HOME/keras.json``
    (default ``~/.keras/keras.json``), else ``tensorflow``; this mirrors that rule so
    callers can decide what to import. Returns ``"tensorflow"``, ``"jax"``, ``"torch"``
    or ``"numpy"``. Once Keras is imported, ``keras.config.backend()`` is the answer.
    """
    if "keras" in sys.modules and hasattr(sys.modules["keras"], "config"):
        return sys.modules["keras"].config.backend()
    name = os.environ.get("KERAS_BACKEND")
    if not name:
        import json

        home = os.environ.get("KERAS_HOME") or os.path.join(
            os.path.expanduser("~"), ".keras")
        try:
            with open(os.path.join(home, "keras.json"), encoding="utf-8") as fh:
                name = json.load(fh).get("backend")
        except (OSError, ValueError, AttributeError):
            name = None
    return str(name or "tensorflow").lower()


def import_keras():
    """Import and return ``keras``; on the TensorFlow backend after a quiet
    :func:`import_tensorflow`, on JAX or PyTorch without importing TensorFlow at all."""
    if keras_backend() == "tensorflow":
        import_tensorflow()
    import keras

    return keras


def import_folders(base_dir=None) -> list[str]:
    """Where a ``"module:function"`` a config names is looked for, before ``sys.path``: the
    config's folder ``base_dir`` (when given), then the current folder (a console script
    such as ``augmine`` does not have it on ``sys.path``)."""
    folders = [Path(base_dir).expanduser().resolve()] if base_dir is not None else []
    folders.append(Path.cwd())
    return list(dict.fromkeys(str(f) for f in folders if f.is_dir()))


def find_object(spec, base_dir=None):
    """The callable a ``"package.module:name"`` string names, imported now; a ValueError
    saying what is wrong (and the fix) otherwise.

    The module is looked for in :func:`import_folders` (``base_dir``: the config's folder,
    then the current folder) before ``sys.path``; those folders are on ``sys.path`` only
    while it is imported, so the imports at its top find its neighbours. Keras is imported
    first (quietly, :func:`import_keras`): a builder or callback module is Keras code, and a
    module importing Keras at its top would otherwise print TensorFlow's start-up log."""
    import importlib
    import re

    text = spec.strip() if isinstance(spec, str) else ""
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", text):
        raise ValueError(f"{spec!r} is not a 'package.module:function' name; write it like "
                         "mypkg.models:build")
    module_name, _, attr = text.partition(":")
    folders = import_folders(base_dir)
    if module_name not in sys.modules:
        import_keras()
    saved = list(sys.path)
    sys.path[:0] = folders
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} ({exc}); put it in the config's "
                         f"folder or the current folder (looked in {', '.join(folders)}), "
                         "or install it") from None
    finally:
        sys.path[:] = saved
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{module_name} has no {attr!r}; check the name after the ':'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{text} is a {type(obj).__name__}, not a function; name a function "
                         "or class")
    return obj


def load_object(spec, what: str = "object", where: str = "config", base_dir=None):
    """:func:`find_object`, its problem a one-line :class:`~augmine.core.errors.AugmineError`
    ``"<where>: <what>: <problem and fix>"``."""
    from augmine.core.errors import AugmineError

    try:
        return find_object(spec, base_dir)
    except ValueError as exc:
        raise AugmineError(f"{where}: {what}: {exc}") from None


# =========================================================================== shipped
# The files augmine ships beside its modules: the built-in recipes and training configs
# (the checkout's top-level ``recipes/``) and the Streamlit app (``apps/``).
#
# The one owner of where they are and of finding a built-in by name
# (:func:`resolve_recipe`, :func:`resolve_config`, :func:`available_recipes`,
# :func:`available_configs`). An installed wheel carries them as the packages
# ``augmine.builtin`` and ``augmine.apps`` (``setup.cfg``'s ``package_dir`` maps the two
# top-level folders there), and an editable install maps the same names onto the checkout's
# folders; a checkout that is only on ``sys.path`` (no install) finds them beside the
# ``augmine/`` folder.

# the checkout's top level: augmine/core/runtime.py -> augmine/core -> augmine -> checkout
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


# =========================================================================== commands
# The ``augmine`` command lines printed for the user to run next ("continue with: ...",
# "open the app: ...", "next: ..."): built here, so each one runs as printed.
#
# A virtual environment that is not activated has ``augmine`` off ``PATH``; the printed
# command then starts with the path of this installation's ``augmine`` script instead.

NAME = "augmine"


def _installed_script() -> Path | None:
    """This installation's ``augmine`` script: the one running, else the one beside this
    interpreter (its environment's scripts folder); None when there is none."""
    running = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    candidates = [running] if running is not None and running.name == NAME else []
    candidates += [Path(sysconfig.get_path("scripts")) / NAME, Path(sys.executable).parent / NAME]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path.absolute()
    return None


def program() -> str:
    """How a shell starts this installation's augmine: ``augmine`` when that name on ``PATH``
    is it (or no script of it is found), else the absolute path of its script."""
    script = _installed_script()
    found = shutil.which(NAME)
    if script is None or (found is not None and os.path.samefile(found, script)):
        return NAME
    return str(script)


def command_line(*args) -> str:
    """``augmine ARGS`` as a shell command line that works as printed: :func:`program`
    first, each argument (paths included) quoted where the shell needs it."""
    return shlex.join([program(), *(str(a) for a in args)])
