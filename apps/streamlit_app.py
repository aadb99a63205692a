"""augmine's Streamlit app: an augmentation browser, a confusion explorer, a run's mining
rounds against their control, recipe comparisons and the affinity of a recipe per class and
transform.

Start it with ``augmine app [RUN_DIR] --data PATH`` (or
``streamlit run apps/streamlit_app.py -- [RUN_DIR] --data PATH``). This script is the entry
point only: the sidebar and the pages are ``augmine.app.frame`` and ``augmine.app.pages.*``
(widgets, caching, layout), over the pure helpers of ``augmine.app.data`` and the library.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import streamlit as st

try:
    import augmine  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augmine.app import frame
from augmine.app.pages import affinity, browser, comparison, confusion, rounds


def cli_args() -> argparse.Namespace:
    """``[RUN_DIR] --data PATH`` given after ``--`` to ``streamlit run``.

    Only read when this file is the script Streamlit runs (sys.argv[0]); otherwise (under
    ``AppTest`` with pytest's own sys.argv) nothing is given.
    """
    parser = argparse.ArgumentParser(prog="augmine app", add_help=False)
    parser.add_argument("run_dir", nargs="?", default=None)
    parser.add_argument("--data", default=None)
    if Path(sys.argv[0]).name != Path(__file__).name:
        return parser.parse_args([])
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args


def main() -> None:
    st.set_page_config(page_title="augmine", layout="wide")
    args = cli_args()
    bad_page = frame.page_from_url()
    page, data_path, run_path = frame.sidebar(args.run_dir, args.data)
    if bad_page:
        st.warning(bad_page)
    try:
        frame.mismatch_warning(run_path, data_path)
        if page == "Augmentation browser":
            browser.render(frame.dataset_root(data_path), run_path)
        elif page == "Rounds":
            rounds.render(run_path)
        elif page == "Recipe comparison":
            comparison.render(run_path)
        elif page == "Affinity":
            affinity.render(run_path, data_path or None)
        else:
            confusion.render(run_path, data_path or None)
    except Exception as exc:  # the page shows one clear line, never a traceback
        frame.show_error(exc)


main()
