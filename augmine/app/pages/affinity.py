"""The Affinity page: a saved ``augmine recipe affinity`` result's heatmap, and for one cell
(class, transform) the class's val images clean and augmented side by side."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from augmine.app.cached import GAP, THUMB, read_image
from augmine.train.affinity import affinity_cell, affinity_command
from augmine.app.data.images import (clean_and_augmented, pad, png_bytes, resolve_image_path,
                                     upscale_nearest)


@st.cache_data(show_spinner=False)
def load_affinity_result(run_dir: str, stem: str, mtime: float) -> dict | None:
    from augmine.runs.rundir import RunDir

    return RunDir(run_dir).read_affinity(stem)


@st.cache_data(max_entries=1024, show_spinner=False)
def affinity_strip(path: str, transforms_json: str, size: int, seed: int) -> bytes:
    """PNG bytes: one val image clean | augmented by the recipe entries ``transforms_json``
    (a JSON list), enlarged."""
    import json

    from augmine.augment.recipes import Recipe

    recipe = Recipe("cell", "", None, json.loads(transforms_json))
    strip = clean_and_augmented(read_image(path), recipe, size, seed)
    return png_bytes(pad(upscale_nearest(strip, 2 * THUMB), GAP))


def render(run_path: str, data_root: str | None) -> None:
    """A saved ``augmine recipe affinity`` result: its heatmap, and for one cell (class,
    transform) the class's val images clean and augmented side by side."""
    import json

    from augmine.train.affinity import column_recipe, format_affinity
    from augmine.runs.rundir import RunDir

    st.header("Affinity")
    if not run_path:
        st.info("No run folder given. Start the app as `augmine app RUN_DIR` on a run whose "
                "affinity `augmine recipe affinity RECIPE --run RUN_DIR` measured.")
        return
    run = RunDir(run_path).check()
    stems = run.affinity_recipes()
    if not stems:
        st.info(f"No affinity result saved in {run.path}. Measure one with "
                f"`{affinity_command(run)}`")
        return
    stem = st.selectbox("Recipe", stems, key="aff_recipe")
    mtime = run.affinity_path(stem).stat().st_mtime
    result = load_affinity_result(str(run.path), stem, mtime)
    st.caption("Drop = the model's val accuracy on clean images minus on images augmented "
               "by one transform alone (forced to fire) or by the whole recipe; red cells "
               "cost the class accuracy.")
    png = run.affinity_path(stem, "png")
    if png.is_file():
        st.image(png.read_bytes(), output_format="PNG")
    with st.expander("Summary as printed"):
        st.code(format_affinity(result), language=None)

    names, cols = result["class_names"], result["columns"]
    c_cls, c_col, c_n = st.columns([2, 2, 1])
    c = c_cls.selectbox("Class", range(len(names)), format_func=lambda i: names[i],
                        key="aff_class")
    k = c_col.selectbox("Transform", range(len(cols)), format_func=lambda i: cols[i],
                        key="aff_column")
    n = c_n.slider("images", 4, 24, 8, 4, key="aff_n")
    cell = affinity_cell(result, c, k)
    m1, m2, m3 = st.columns(3)
    m1.metric("clean accuracy", f"{cell['clean']:.0%}")
    m2.metric("drop (points)", f"{100 * cell['drop']:+.1f}")
    m3.metric("95% interval", f"[{100 * cell['low']:+.1f}, {100 * cell['high']:+.1f}]")
    root = data_root or result.get("data")
    transforms_json = json.dumps(column_recipe(result, k).transforms)
    items, missing = [], 0
    for i in cell["order"][:n]:
        path = resolve_image_path(str(result["val_paths"][i]), root)
        if path is None:
            missing += 1
            continue
        items.append({"image": affinity_strip(path, transforms_json, int(result["size"]),
                                              int(i)),
                      "caption": Path(path).name})
    if items:
        st.markdown(f"**{names[c]}: clean (left) and {cols[k]} (right), at "
                    f"{result['size']} px; the images it hurts most first**")
        for start in range(0, len(items), 4):
            for col, it in zip(st.columns(4), items[start:start + 4]):
                col.image(it["image"], caption=it["caption"], output_format="PNG")
    if missing:
        st.warning(f"{missing} validation image(s) were not found on disk (moved dataset?); "
                   "give its folder as Dataset folder in the sidebar")
