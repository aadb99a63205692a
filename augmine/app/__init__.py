"""The Streamlit app's side of the library: its pure helpers (``data/``, no Streamlit), what
surrounds every page (``frame``, ``cached``), the pages (``pages/``, one module each with a
``render`` function) and the script ``augmine app`` starts (:data:`APP_FILE`,
``apps/streamlit_app.py`` in a checkout), which imports them.
"""

from __future__ import annotations

from augmine.core.runtime import app_file

# The script ``augmine app`` hands to ``streamlit run``.
APP_FILE = app_file()
