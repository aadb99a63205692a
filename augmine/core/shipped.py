"""The files augmine ships beside its modules: the built-in recipes and training configs
(the checkout's top-level ``recipes/``) and the Streamlit app (``apps/``).

The one owner of where they are. An installed wheel carries them as the packages
``augmine.builtin`` and ``augmine.apps`` (``setup.cfg``'s ``package_dir`` maps the two
top-level folders there), and an editable install maps the same names onto the checkout's
folders; a checkout that is only on ``sys.path`` (no install) finds them beside the
``augmine/`` folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

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
