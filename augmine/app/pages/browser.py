"""The augmentation browser: one image of a class, a recipe picked and edited transform by
transform, and a grid of augmented samples under the class's own recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from augmine.app.cached import GAP, THUMB, display_image, load_index, read_image
from augmine.app.data.images import augment_samples, pad, png_bytes, upscale_nearest
from augmine.app.data.recipes import (PreviewSetting, check_recipe_path, class_preview,
                                      is_loopback, load_recipe_text, param_kind,
                                      preview_settings, recipe_choices, recipe_yaml,
                                      run_recipe_uses, transform_defaults)
from augmine.core.errors import AugmineError


@st.cache_data(ttl=10, show_spinner=False)
def recipe_files(run_dir: str, folder: str) -> tuple[dict[str, str], str | None]:
    """``({path: label}, default path)``: the run's recipes, those in the working folder,
    the built-ins (:func:`augmine.app.data.recipes.recipe_choices`); re-read every 10 s, so a file
    just written appears."""
    return recipe_choices(run_dir or None, folder or None)


@st.cache_data(ttl=10, show_spinner=False)
def recipe_uses(run_dir: str) -> dict[str, list[PreviewSetting]]:
    """How the run trains each of its recipes (:func:`augmine.app.data.recipes.run_recipe_uses`)."""
    return run_recipe_uses(run_dir or None)


@st.cache_data(show_spinner=False)
def load_recipe_entries(path: str, mtime: float) -> dict:
    """name, description and transform entries of a recipe file (validated)."""
    from augmine.augment.recipes import load_recipe

    rec = load_recipe(path)
    return {"name": rec.name, "description": rec.description or "",
            "transforms": [dict(t) for t in rec.transforms], "classes": dict(rec.classes)}


@st.cache_resource(max_entries=64, show_spinner=False)
def recipe_from_text(text: str):
    return load_recipe_text(text)


@st.cache_resource(max_entries=64, show_spinner=False)
def class_recipe(text: str, setting: PreviewSetting, class_ids: tuple, class_names: tuple,
                 label: int):
    """``(recipe, note, warning)``: the edited recipe as class ``label`` trains under it
    at ``setting``'s strength (:func:`augmine.app.data.recipes.class_preview`)."""
    return class_preview(recipe_from_text(text), class_ids, class_names, label, setting)


@st.cache_data(max_entries=256, show_spinner=False)
def augmented_grid(text: str, path: str, setting: PreviewSetting, n: int, seed: int,
                   class_ids: tuple, class_names: tuple, label: int) -> list[bytes]:
    """PNG bytes of ``n`` augmented samples of an image of class ``label``, under the
    class's own recipe at ``setting``'s size and strength (shrunk first when the phase
    presizes, as the feed does), enlarged to >= THUMB px with nearest neighbour."""
    from augmine.feed.batches import presized

    recipe = class_recipe(text, setting, class_ids, class_names, label)[0]
    image = read_image(path)
    if setting.presize:
        image = presized(image, setting.size)
    samples = augment_samples(image, recipe, setting.size, n, seed)
    # a white margin separates neighbouring samples in st.image's gap-less row
    return [png_bytes(pad(upscale_nearest(s, THUMB), GAP))
            for s in samples]


@st.cache_data(show_spinner=False)
def shown_defaults(name: str) -> dict:
    """``{argument: repr(default)}`` of transform ``name``, as the editor's help shows them."""
    return {k: repr(v) for k, v in transform_defaults(name).items()}


def transform_editor(prefix: str, i: int, entry: dict) -> dict | None:
    """Widgets for one recipe entry; returns the edited entry, or None when switched off."""
    import yaml

    name = entry["transform"]
    on = st.checkbox(f"**{i + 1}. {name}**", value=True, key=f"{prefix}on{i}")
    if entry.get("why"):
        st.caption(f"why: {entry['why']}")
    if not on:
        return None
    out = {"transform": name}
    with st.expander("parameters"):
        out["p"] = st.slider("p", 0.0, 1.0, float(entry.get("p", 1.0)), 0.05,
                             key=f"{prefix}p{i}")
        for arg, value in entry.items():
            if arg in ("transform", "p", "why"):
                continue
            key = f"{prefix}a{i}{arg}"
            kind = param_kind(value)
            if kind == "bool":
                out[arg] = st.checkbox(arg, value=value, key=key)
            elif kind == "int":
                out[arg] = int(st.number_input(arg, value=int(value), step=1, key=key))
            elif kind == "float":
                out[arg] = float(st.number_input(arg, value=float(value), format="%.4g",
                                                 key=key))
            elif kind == "pair":
                c1, c2 = st.columns(2)
                is_int = all(isinstance(v, int) for v in value)
                cast = int if is_int else float
                fmt = None if is_int else "%.4g"
                lo = c1.number_input(f"{arg} (low)", value=cast(value[0]), format=fmt,
                                     key=key + "0")
                hi = c2.number_input(f"{arg} (high)", value=cast(value[1]), format=fmt,
                                     key=key + "1")
                out[arg] = [cast(lo), cast(hi)]
            elif kind == "text":
                out[arg] = st.text_input(arg, value=value, key=key)
            else:
                raw = st.text_input(f"{arg} (YAML)", value=yaml.safe_dump(
                    value, default_flow_style=True).strip(), key=key)
                try:
                    out[arg] = yaml.safe_load(raw)
                except yaml.YAMLError:
                    st.warning(f"{arg}: not valid YAML; keeping {value!r}")
                    out[arg] = value
        defaults = ", ".join(f"{k}={v}" for k, v in shown_defaults(name).items())
        extra = st.text_input("more arguments (YAML mapping)", value="", key=f"{prefix}x{i}",
                              placeholder="e.g. {border_mode: 0}",
                              help=f"Arguments and defaults of {name}: {defaults}")
        if extra.strip():
            try:
                more = yaml.safe_load(extra)
                if not isinstance(more, dict):
                    raise yaml.YAMLError("not a mapping")
                out.update(more)
            except yaml.YAMLError:
                st.warning("more arguments: write a YAML mapping such as {border_mode: 0}")
    if entry.get("why"):
        out["why"] = entry["why"]
    return out


def recipe_picker(run_path: str) -> str | None:
    """The recipe file chosen: the run's, the working folder's, built-in, or a path typed
    into the box (checked first; a bad one is one line in the page)."""
    ss = st.session_state
    ss.setdefault("recipe_extra", [])
    files, default = recipe_files(run_path, str(Path.cwd()))
    for path in ss["recipe_extra"]:
        files = {path: f"typed: {path}", **files}
    if not files:
        st.warning("no recipe files: none in the run, the working folder or recipes/; "
                   "type a recipe file's path")
        return None

    def add_typed() -> None:
        ss["recipe_typed_error"] = None
        text = (ss.get("recipe_typed") or "").strip()
        if not text:
            return
        try:
            path = check_recipe_path(text)
        except AugmineError as exc:
            ss["recipe_typed_error"] = str(exc)
            return
        if path not in ss["recipe_extra"]:
            ss["recipe_extra"].append(path)
        ss["recipe_file"] = path

    names = list(files)
    if ss.get("recipe_file") not in files:
        ss["recipe_file"] = default if default in files else names[0]
    rec_path = st.selectbox("Recipe", names, key="recipe_file", format_func=files.get,
                            help="The run's recipes first, then the recipe files in the "
                                 "working folder, then the built-ins.")
    address = st.get_option("server.address")
    if is_loopback(address):
        st.text_input("Another recipe file", key="recipe_typed", on_change=add_typed,
                      placeholder="path/to/recipe.yaml, then Enter",
                      help="e.g. the recipe `augmine inspect --suggest` wrote")
    else:     # whoever reaches a shared port must not read this machine's files
        st.caption(f"Typing a recipe path is off while the app listens on {address}; put "
                   "the recipe in the folder the app was started from.")
    if ss.get("recipe_typed_error"):
        st.error(ss["recipe_typed_error"])
    return rec_path


def render(data_root: str, run_path: str = "") -> None:
    """The page for dataset ``data_root``, offering ``run_path``'s recipes first."""
    st.header("Augmentation browser")
    index = load_index(data_root)
    ss = st.session_state

    c_cls, c_split, c_img = st.columns([3, 1, 3])
    cls_name = c_cls.selectbox("Class", index.class_names, key="cls")
    split = c_split.radio("Split", [s for s in ("val", "train") if s in index.splits],
                          key="split", horizontal=True)
    label = index.class_index(cls_name)
    paths = index.split(split).paths[index.split(split).labels == label]
    if len(paths) == 0:
        st.warning(f"class {cls_name!r} has no {split} images in {index.root}")
        return
    ss.setdefault("img_no", 0)
    if ss["img_no"] >= len(paths):
        ss["img_no"] = 0
    with c_img:
        ci, cr = st.columns([3, 2])
        ci.number_input(f"Image (0-{len(paths) - 1})", min_value=0, max_value=len(paths) - 1,
                        step=1, key="img_no")
        cr.write("")
        cr.button("Random image", key="random_img", on_click=lambda: ss.update(
            img_no=int(np.random.default_rng().integers(len(paths)))))
    path = str(paths[int(ss["img_no"])])

    c_rec, c_size, c_n, c_seed = st.columns([3, 2, 2, 2])
    with c_rec:
        rec_path = recipe_picker(run_path)
    if rec_path is None:
        return
    options, default = preview_settings(recipe_uses(run_path).get(rec_path, []))
    setting = c_size.selectbox(
        "Preview as", options, index=default, key=f"as:{rec_path}",
        format_func=lambda o: o.label,
        help="Each use of this recipe in the run at its own image size and strength (as "
             "training builds it), or a size with the recipe as written.")
    size = setting.size
    n = c_n.slider("Samples", 4, 48, 16, 4, key="n_samples")
    ss.setdefault("seed", 0)
    with c_seed:
        c_seed.number_input("Seed", min_value=0, step=1, key="seed")
        c_seed.button("Re-roll", key="reroll", on_click=lambda: ss.update(seed=int(ss["seed"]) + 1))

    rec_file = Path(rec_path).name
    entries = load_recipe_entries(rec_path, Path(rec_path).stat().st_mtime)
    left, right = st.columns([2, 5])
    with left:
        st.subheader("Transforms")
        if entries["description"]:
            st.caption(entries["description"])
        prefix = f"t:{rec_path}:"
        edited = []
        for i, entry in enumerate(entries["transforms"]):
            with st.container(border=True):
                e = transform_editor(prefix, i, entry)
            if e is not None:
                edited.append(e)
        if entries["classes"]:
            st.caption("classes: " + "; ".join(
                f"{k}: " + ", ".join(f"{a} {v}" for a, v in o.items() if a != "why")
                for k, o in entries["classes"].items()))
    stem = Path(rec_file).stem
    text = recipe_yaml(f"{entries['name']}-edited", entries["description"], edited,
                               entries["classes"])
    with right:
        st.subheader(f"{cls_name} - {Path(path).name} ({split} image)")
        try:
            recipe, note, warning = class_recipe(text, setting, tuple(index.class_ids),
                                                 tuple(index.class_names), int(label))
        except AugmineError as exc:
            st.error(f"The edited recipe is not valid: {exc}")
            return
        if warning:
            st.warning(warning)
        if note:
            st.info(note)
        # the original on its own row above the grid: side by side, a wide original
        # overflowed its narrow column onto the first augmented samples
        st.image(display_image(path, 192), output_format="PNG",
                 caption=f"original ({split} image, {read_image(path).shape[1]} px)")
        grid = augmented_grid(text, path, setting, int(n), int(ss["seed"]),
                              tuple(index.class_ids), tuple(index.class_names), int(label))
        st.caption(setting.caption())
        st.image(grid, width=THUMB + 2 * GAP, output_format="PNG",
                 caption=[f"#{k} ({size} px)" for k in range(len(grid))])
        st.caption(f"{len(edited)} of {len(entries['transforms'])} transforms on; "
                   f"{recipe.name}; seed {ss['seed']}. Images are enlarged with nearest "
                   "neighbour so each pixel stays visible.")
        st.download_button("Download edited recipe (YAML)", text, file_name=f"{stem}-edited.yaml",
                           mime="application/x-yaml", key="download")
        with st.expander("Edited recipe YAML"):
            st.code(text, language="yaml")
