"""What surrounds every page of the app: the sidebar (page, dataset and run folder), the
page a URL opens, the wrong-dataset warning and the one line an error becomes."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import streamlit as st

from augmine.app.cached import default_dataset, load_index
from augmine.app.data.folders import folder_choices, run_class_mismatch, run_data_root
from augmine.app.data.navigation import PAGES, page_from_query, page_slug
from augmine.core.errors import AugmineError

log = logging.getLogger("augmine.app")


def show_error(exc: Exception) -> None:
    """One clear line in the page; the traceback only in the server log for unexpected errors."""
    if isinstance(exc, AugmineError):
        st.error(str(exc))
    else:
        log.error("augmine app: %s", traceback.format_exc())
        st.error(f"Unexpected error: {type(exc).__name__}: {exc}")


def page_from_url() -> str | None:
    """Open the page ``?page=`` names on a session's first run (``?page=affinity``); the
    one-line problem when it names none. The URL then follows the page shown, so it can
    be shared."""
    wanted = st.query_params.get("page")
    if "page" in st.session_state or not wanted:
        return None
    page = page_from_query(wanted, PAGES)
    if page is None:
        return (f"?page={wanted}: no such page; use one of "
                + ", ".join(page_slug(p) for p in PAGES))
    st.session_state["page"] = page
    return None


def sidebar(run_dir: str | None, data: str | None) -> tuple[str, str, str]:
    """Page choice, dataset path and run folder path ("" = default / none) from the sidebar,
    offering only the folders the app was started with (``run_dir``, ``data``: see
    :func:`augmine.app.data.folders.folder_choices`)."""
    data_opts, run_opts = folder_choices(run_dir, data)
    with st.sidebar:
        st.title("augmine")
        page = st.radio("Page", PAGES, key="page")
        st.query_params["page"] = page_slug(page)
        data_path = st.selectbox(
            "Dataset folder", data_opts, key="data_path",
            format_func=lambda p: p or "generated default dataset",
            help="Tiny-ImageNet layout or train/<class>/ + val/<class>/ folders.")
        run_path = st.selectbox(
            "Run folder", run_opts, key="run_path", format_func=lambda p: p or "none",
            help="A folder `augmine train` wrote: config.yaml and reports/<stage>/.")
        st.caption("The app opens only the folders it was started with: "
                   "`augmine app RUN_DIR --data DATASET`.")
    return page, data_path or "", run_path or ""


def dataset_root(data_path: str) -> str:
    """The dataset to browse: the sidebar's choice, else the generated default."""
    return data_path or default_dataset()


def mismatch_warning(run_path: str, data_path: str) -> None:
    """A warning above every page when the dataset opened with the run (the sidebar's, else
    the run's recorded one) does not hold the classes the run was trained on."""
    if not run_path:
        return
    root = data_path or run_data_root(run_path)
    if not root or not Path(root).is_dir():
        return
    try:
        diff = run_class_mismatch(run_path, load_index(root))
    except AugmineError:
        return                        # the page itself says what is wrong with the folder
    if diff:
        st.warning(diff)
