"""The app's loading shared by its pages, cached by Streamlit: the dataset index, decoded
images and the PNG bytes shown for them, and the generated default dataset."""

from __future__ import annotations

import numpy as np
import streamlit as st

from augmine.app.data.images import GREEN, RED, png_bytes, upscale_nearest, with_border

THUMB = 128            # display width of one augmented sample / val image (px)
GAP = 3                # white margin around each augmented sample (px)


@st.cache_resource(show_spinner="Generating the default dataset (first start only)...")
def default_dataset() -> str:
    from augmine.data.synth import ensure_default_dataset

    return str(ensure_default_dataset())


@st.cache_resource(show_spinner="Indexing the dataset...")
def load_index(root: str):
    from augmine.data.dataset import load_index as _load_index

    return _load_index(root)


@st.cache_data(max_entries=2048, show_spinner=False)
def read_image(path: str) -> np.ndarray:
    from augmine.data.dataset import read_image as _read_image

    return _read_image(path)


@st.cache_data(max_entries=4096, show_spinner=False)
def display_image(path: str, min_side: int = THUMB, wrong: bool | None = None) -> bytes:
    """PNG bytes of an image file for st.image: enlarged with nearest neighbour, framed red
    (misclassified) or green (correct) when ``wrong`` is given. Caching the encoded PNG
    keeps reruns fast: st.image would re-encode an array on every rerun."""
    img = upscale_nearest(read_image(path), min_side)
    if wrong is not None:
        img = with_border(img, RED if wrong else GREEN, width=max(3, img.shape[0] // 32))
    return png_bytes(img)
