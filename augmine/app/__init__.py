"""The Streamlit app shipped with augmine (``streamlit_app.py``, started by ``augmine app``).

Not imported by the library: Streamlit runs the file as a script (:data:`APP_FILE`).
"""

from __future__ import annotations

from pathlib import Path

# The script ``augmine app`` hands to ``streamlit run``.
APP_FILE = Path(__file__).resolve().parent / "streamlit_app.py"
