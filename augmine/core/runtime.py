"""Process-wide quiet/verbose switches and quiet lazy imports of the heavy libraries.

TensorFlow prints pages of C++ and absl start-up lines; augmine hides them unless the
user asks for ``--verbose``. Import TensorFlow through :func:`import_tensorflow` so the
switch applies wherever it is first imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path

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
