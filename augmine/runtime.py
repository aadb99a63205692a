"""Process-wide quiet/verbose switches and quiet lazy imports of the heavy libraries.

TensorFlow prints pages of C++ and absl start-up lines; augmine hides them unless the
user asks for ``--verbose``. Import TensorFlow through :func:`import_tensorflow` so the
switch applies wherever it is first imported.
"""

from __future__ import annotations

import logging
import os

_verbose = False


def set_verbose(verbose: bool) -> None:
    """Show (True) or hide (False, the default) TensorFlow's start-up log and augmine's info lines."""
    global _verbose
    _verbose = verbose
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    logging.getLogger("augmine").setLevel(logging.INFO if verbose else logging.WARNING)


def is_verbose() -> bool:
    return _verbose


def import_tensorflow():
    """Import and return ``tensorflow``, with its Python-side logging quiet unless verbose."""
    import tensorflow as tf

    if not _verbose:
        tf.get_logger().setLevel(logging.ERROR)
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:  # pragma: no cover - absl ships with tensorflow
            pass
    return tf
