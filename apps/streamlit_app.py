"""augmine's Streamlit app: an augmentation browser, a confusion explorer, recipe comparisons
and the affinity of a recipe per class and transform.

Start it with ``augmine app [RUN_DIR] --data PATH`` (or
``streamlit run apps/streamlit_app.py -- [RUN_DIR] --data PATH``). The app is a thin layer:
loading, augmentation and analysis live in the ``augmine`` package (``augmine.app.data``,
``augmine.augment.recipes``, ``augmine.analysis.reports``); here are widgets, caching and layout.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

import numpy as np
import streamlit as st

try:
    import augmine  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from augmine.app import data as appdata
from augmine.core.errors import AugmineError

log = logging.getLogger("augmine.app")

PAGES = ("Augmentation browser", "Confusion explorer", "Recipe comparison", "Affinity")
SIZES = (16, 32, 64)
THUMB = 128            # display width of one augmented sample / val image (px)
GAP = 3                # white margin around each augmented sample (px)


# --------------------------------------------------------------------------- arguments

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


# --------------------------------------------------------------------------- cached loading

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
    img = appdata.upscale_nearest(read_image(path), min_side)
    if wrong is not None:
        img = appdata.with_border(img, appdata.RED if wrong else appdata.GREEN,
                                  width=max(3, img.shape[0] // 32))
    return appdata.png_bytes(img)


@st.cache_data(ttl=10, show_spinner=False)
def recipe_files(run_dir: str, folder: str) -> tuple[dict[str, str], str | None]:
    """``({path: label}, default path)``: the run's recipes, those in the working folder,
    the built-ins (:func:`augmine.app.data.recipe_choices`); re-read every 10 s, so a file
    just written appears."""
    return appdata.recipe_choices(run_dir or None, folder or None)


@st.cache_data(show_spinner=False)
def load_recipe_entries(path: str, mtime: float) -> dict:
    """name, description and transform entries of a recipe file (validated)."""
    from augmine.augment.recipes import load_recipe

    rec = load_recipe(path)
    return {"name": rec.name, "description": rec.description or "",
            "transforms": [dict(t) for t in rec.transforms], "classes": dict(rec.classes)}


@st.cache_resource(max_entries=64, show_spinner=False)
def recipe_from_text(text: str):
    return appdata.load_recipe_text(text)


@st.cache_resource(max_entries=64, show_spinner=False)
def class_recipe(text: str, class_ids: tuple, class_names: tuple, label: int):
    """``(recipe, note, warning)``: the edited recipe as class ``label`` trains under it
    (:func:`augmine.app.data.class_preview`)."""
    return appdata.class_preview(recipe_from_text(text), class_ids, class_names, label)


@st.cache_data(max_entries=256, show_spinner=False)
def augmented_grid(text: str, path: str, size: int, n: int, seed: int, class_ids: tuple,
                   class_names: tuple, label: int) -> list[bytes]:
    """PNG bytes of ``n`` augmented samples of an image of class ``label``, under the
    class's own recipe, enlarged to >= THUMB px with nearest neighbour."""
    recipe = class_recipe(text, class_ids, class_names, label)[0]
    samples = appdata.augment_samples(read_image(path), recipe, size, n, seed)
    # a white margin separates neighbouring samples in st.image's gap-less row
    return [appdata.png_bytes(appdata.pad(appdata.upscale_nearest(s, THUMB), GAP))
            for s in samples]


@st.cache_data(show_spinner=False)
def transform_defaults(name: str) -> dict:
    return {k: repr(v) for k, v in appdata.transform_defaults(name).items()}


def _reports_stamp(run_dir: str) -> tuple:
    """Changes whenever a report is added or rewritten: part of the cache keys below."""
    from augmine.analysis.reports import report_files_stamp

    return report_files_stamp(run_dir)


@st.cache_data(show_spinner="Reading the run folder...")
def load_reports(run_dir: str, stamp: tuple) -> list[dict]:
    from augmine.analysis.reports import list_stage_reports

    return list_stage_reports(run_dir)


@st.cache_data(show_spinner=False)
def load_confusion(run_dir: str, stage: str, stamp: tuple) -> np.ndarray | None:
    from augmine.analysis.reports import load_confusion as _load_confusion

    return _load_confusion(run_dir, stage)


@st.cache_data(show_spinner=False)
def load_predictions(run_dir: str, stage: str, stamp: tuple) -> dict | None:
    from augmine.analysis.reports import load_predictions as _load_predictions

    try:
        return _load_predictions(run_dir, stage)
    except AugmineError:
        return None


@st.cache_data(show_spinner=False)
def load_suspects(run_dir: str, stage: str, stamp: tuple) -> list[dict]:
    return appdata.read_suspects(run_dir, stage)


@st.cache_data(show_spinner=False)
def load_history(run_dir: str, classes: tuple, stamp: tuple) -> dict:
    from augmine.analysis.reports import history

    return history(run_dir, list(classes) or None)


# --------------------------------------------------------------------------- helpers

def show_error(exc: Exception) -> None:
    """One clear line in the page; the traceback only in the server log for unexpected errors."""
    if isinstance(exc, AugmineError):
        st.error(str(exc))
    else:
        log.error("augmine app: %s", traceback.format_exc())
        st.error(f"Unexpected error: {type(exc).__name__}: {exc}")


def folder_choices(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The only folders the app opens: (dataset choices, run folder choices).

    Datasets: ``--data``, the run's recorded dataset, then ``""`` (the generated default);
    runs: RUN_DIR, then ``""`` (none). Nobody who reaches the port can open any other
    folder: the sidebar offers these as choices, never as free text.
    """
    def norm(p: str) -> str:
        return str(Path(p).expanduser().resolve())

    run = norm(args.run_dir) if args.run_dir else ""
    data = [norm(args.data)] if args.data else []
    if run:
        recorded = appdata.run_data_root(run)
        if recorded and Path(recorded).is_dir():
            data.append(norm(recorded))
    return list(dict.fromkeys(data)) + [""], ([run] if run else []) + [""]


def page_from_url() -> str | None:
    """Open the page ``?page=`` names on a session's first run (``?page=affinity``); the
    one-line problem when it names none. The URL then follows the page shown, so it can
    be shared."""
    wanted = st.query_params.get("page")
    if "page" in st.session_state or not wanted:
        return None
    page = appdata.page_from_query(wanted, PAGES)
    if page is None:
        return (f"?page={wanted}: no such page; use one of "
                + ", ".join(appdata.page_slug(p) for p in PAGES))
    st.session_state["page"] = page
    return None


def sidebar(args: argparse.Namespace) -> tuple[str, str, str]:
    """Page choice, dataset path and run folder path ("" = default / none) from the sidebar."""
    data_opts, run_opts = folder_choices(args)
    with st.sidebar:
        st.title("augmine")
        page = st.radio("Page", PAGES, key="page")
        st.query_params["page"] = appdata.page_slug(page)
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


# --------------------------------------------------------------------------- page 1

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
            kind = appdata.param_kind(value)
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
        defaults = ", ".join(f"{k}={v}" for k, v in transform_defaults(name).items())
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
            path = appdata.check_recipe_path(text)
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
    if appdata.is_loopback(address):
        st.text_input("Another recipe file", key="recipe_typed", on_change=add_typed,
                      placeholder="path/to/recipe.yaml, then Enter",
                      help="e.g. the recipe `augmine inspect --suggest` wrote")
    else:     # whoever reaches a shared port must not read this machine's files
        st.caption(f"Typing a recipe path is off while the app listens on {address}; put "
                   "the recipe in the folder the app was started from.")
    if ss.get("recipe_typed_error"):
        st.error(ss["recipe_typed_error"])
    return rec_path


def page_browser(data_root: str, run_path: str = "") -> None:
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
    size = c_size.radio("Size (px)", SIZES, index=2, key="size", horizontal=True)
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
    text = appdata.recipe_yaml(f"{entries['name']}-edited", entries["description"], edited,
                               entries["classes"])
    with right:
        st.subheader(f"{cls_name} - {Path(path).name} ({split} image)")
        try:
            recipe, note, warning = class_recipe(text, tuple(index.class_ids),
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
        grid = augmented_grid(text, path, int(size), int(n), int(ss["seed"]),
                              tuple(index.class_ids), tuple(index.class_names), int(label))
        st.image(grid, width=THUMB + 2 * GAP, output_format="PNG",
                 caption=[f"#{k} ({size} px)" for k in range(len(grid))])
        st.caption(f"{len(edited)} of {len(entries['transforms'])} transforms on; "
                   f"{recipe.name}; seed {ss['seed']}. Images are enlarged with nearest "
                   "neighbour so each pixel stays visible.")
        st.download_button("Download edited recipe (YAML)", text, file_name=f"{stem}-edited.yaml",
                           mime="application/x-yaml", key="download")
        with st.expander("Edited recipe YAML"):
            st.code(text, language="yaml")


# --------------------------------------------------------------------------- page 2

def heatmap(sub: np.ndarray, names: list[str]):
    import altair as alt
    import pandas as pd

    rows = [{"true": names[i], "predicted": names[j], "count": int(sub[i, j])}
            for i in range(len(names)) for j in range(len(names))]
    df = pd.DataFrame(rows)
    base = alt.Chart(df).encode(
        x=alt.X("predicted:N", sort=names, title="predicted"),
        y=alt.Y("true:N", sort=names, title="true"))
    rect = base.mark_rect().encode(color=alt.Color("count:Q", scale=alt.Scale(scheme="blues")),
                                   tooltip=["true", "predicted", "count"])
    text = base.mark_text(fontSize=12).encode(
        text="count:Q",
        color=alt.condition(alt.datum.count > float(sub.max()) / 2, alt.value("white"),
                            alt.value("black")))
    return (rect + text).properties(height=max(260, 36 * len(names)))


def f1_chart(rows: list[dict], stages: list[str]):
    import altair as alt
    import pandas as pd

    df = pd.DataFrame(rows)
    return alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("stage:N", sort=stages, title="stage"),
        y=alt.Y("f1:Q", scale=alt.Scale(domain=[0, 1]), title="F1"),
        color=alt.Color("class:N", title="class"),
        tooltip=["stage", "class", alt.Tooltip("f1:Q", format=".3f")]).properties(height=320)


def pair_grid(title: str, items: list[dict], per_row: int = 6) -> None:
    st.markdown(f"**{title}**")
    if not items:
        st.caption("no validation images")
        return
    for start in range(0, len(items), per_row):
        cols = st.columns(per_row)
        for col, it in zip(cols, items[start:start + per_row]):
            col.image(it["image"], caption=it["caption"], width=THUMB, output_format="PNG")


def page_confusion(run_path: str, data_root: str | None) -> None:
    import pandas as pd

    st.header("Confusion explorer")
    if not run_path:
        st.info("No run folder given. Start the app as `augmine app RUN_DIR` on a folder "
                "`augmine train` wrote. The augmentation browser works without one.")
        return
    from augmine.runs.rundir import RunDir

    run_dir = str(RunDir(run_path).check())
    stamp = _reports_stamp(run_dir)
    reports = load_reports(run_dir, stamp)
    if not reports:
        st.warning(f"{run_dir} has no reports yet: they appear in reports/<stage>/ after each "
                   "training phase (`augmine train`) and mining round (`augmine mine`).")
        return
    stages = [r["stage"] for r in reports]
    stage = st.selectbox("Stage", stages, index=len(stages) - 1, key="stage")
    rep = reports[stages.index(stage)]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("accuracy", f"{rep.get('accuracy', float('nan')):.3f}")
    top5 = rep.get("top5_accuracy")
    m2.metric("top-5 accuracy", "-" if top5 is None else f"{top5:.3f}")
    m3.metric("macro F1", f"{rep.get('macro_f1', float('nan')):.3f}")
    m4.metric("image size", f"{rep.get('size', '-')} px")
    best = appdata.best_line(run_dir)
    if best:
        st.caption(best)

    per_class = pd.DataFrame(rep.get("per_class", []))
    names = list(per_class["name"]) if len(per_class) else []
    c_tab, c_heat = st.columns([1, 1])
    with c_tab:
        st.subheader("Per-class scores")
        st.caption("Click a column header to sort.")
        if len(per_class):
            cols = [c for c in ("name", "class_id", "precision", "recall", "f1", "support")
                    if c in per_class]
            st.dataframe(per_class[cols].sort_values("f1"), hide_index=True, key="per_class",
                         column_config={c: st.column_config.NumberColumn(format="%.3f")
                                        for c in ("precision", "recall", "f1")})
    with c_heat:
        st.subheader("Confusion among the weakest classes")
        cm = load_confusion(run_dir, stage, stamp)
        if cm is None or not names:
            st.info("this report has no confusion.npy")
        else:
            k = st.slider("classes", 2, max(2, len(names)), min(8, len(names)), key="weak_k")
            idx, sub = appdata.weakest_submatrix(cm, per_class["f1"].to_numpy(), k)
            st.altair_chart(heatmap(sub, [names[i] for i in idx]), key="heatmap",
                            height=max(260, 36 * len(idx)) + 140)

    st.subheader("Confused pair, side by side")
    pairs = rep.get("symmetric_pairs") or []
    options = [(p["a"], p["b"], f"{p['a_name']} <-> {p['b_name']} ({p['count']} confusions)")
               for p in pairs]
    if not options:
        options = [(p["true"], p["pred"], f"{p['true_name']} -> {p['pred_name']} ({p['count']})")
                   for p in rep.get("confused_pairs") or []]
    preds = load_predictions(run_dir, stage, stamp)
    root = data_root or appdata.run_data_root(run_dir)
    if not options:
        st.info("no confused pairs in this report: every validation image was classified "
                "correctly")
    elif preds is None:
        st.info("this report has no predictions.npz, so its images cannot be shown")
    else:
        choice = st.selectbox("Pair", range(len(options)), format_func=lambda i: options[i][2],
                              key="pair")
        a, b, _ = options[choice]
        per_class_n = st.slider("images per class", 6, 50, 18, 6, key="pair_n")
        sel = appdata.pair_samples(preds["y_true"], preds["probs"], a, b)
        cols = st.columns(2)
        missing = 0
        for col, cls in zip(cols, (a, b)):
            other = b if cls == a else a
            mine = np.flatnonzero(sel["true"] == cls)
            counts = np.bincount(sel["group"][mine], minlength=3)
            shown = mine[:per_class_n]
            with col:
                st.markdown(f"**{names[cls]}: {counts[0] + counts[1]} of {len(mine)} "
                            f"misclassified, {counts[0]} as {names[other]}**")
                for g, title in ((0, f"{names[cls]} predicted as {names[other]}"),
                                 (1, f"{names[cls]} predicted as other classes"),
                                 (2, "correct")):
                    items = []
                    for j in shown[sel["group"][shown] == g]:
                        p = appdata.resolve_image_path(
                            str(preds["val_paths"][sel["index"][j]]), root)
                        if p is None:
                            missing += 1
                            continue
                        wrong = not bool(sel["correct"][j])
                        cap = (f"✗ {names[sel['pred'][j]]} ({sel['confidence'][j]:.2f})"
                               if wrong else f"✓ {sel['confidence'][j]:.2f}")
                        items.append({"image": display_image(p, THUMB, wrong),
                                      "caption": cap})
                    if items:
                        pair_grid(f"{title} ({counts[g]})", items, 4)
        st.caption(f"Validation images of the {stage} report. The pair's cross-confusions "
                   "come first, then the other misclassified images, then correct ones. Red "
                   "frame + ✗: misclassified, with the predicted class and its confidence; "
                   "green ✓: correct.")
        if missing:
            st.warning(f"{missing} validation image(s) were not found on disk (moved "
                       "dataset?); give its folder as Dataset folder in the sidebar")

    st.subheader("Per-class F1 across phases and rounds")
    default_classes = load_history(run_dir, (), stamp)["classes"]
    chosen = st.multiselect("Classes", names, default=[c for c in default_classes if c in names],
                            key="f1_classes",
                            help="Default: the classes the mining rounds chose, else the 5 "
                                 "weakest.")
    if chosen:
        hist = load_history(run_dir, tuple(chosen), stamp)
        rows = [{"stage": r["stage"], "class": c, "f1": v}
                for r in hist["rows"] for c, v in r["f1"].items() if v is not None]
        st.altair_chart(f1_chart(rows, stages), key="f1_chart")
    else:
        st.caption("choose classes to plot")

    suspects = load_suspects(run_dir, stage, stamp)
    if suspects:
        st.subheader("Suspect samples of the weak classes")
        st.caption(appdata.suspects_caption(suspects))
        items = []
        for s in suspects:
            p = appdata.resolve_image_path(str(s.get("path") or ""), root)
            if p is None:
                continue
            cap = f"{s.get('name', '')}: {s['self_confidence']:.2f}"
            if s.get("predicted_name") and s["predicted_name"] != s.get("name"):
                cap += f" → {s['predicted_name']} ({s['predicted_prob']:.2f})"
            items.append({"image": display_image(p, THUMB), "caption": cap})
        pair_grid(f"{len(items)} suspect images", items, 8)


# --------------------------------------------------------------------------- page 3

@st.cache_data(show_spinner=False)
def load_comparison(folder: str, stamp: float) -> dict:
    from augmine.experiments.compare_results import load_results

    return load_results(folder)


def curve_chart(rows: list[dict], title: str):
    import altair as alt
    import pandas as pd

    df = pd.DataFrame([{"epoch": r["epoch"], "size": r["size"], "split": split,
                        "accuracy": r[key]}
                       for r in rows for split, key in (("train (augmented)", "accuracy"),
                                                         ("val", "val_accuracy"))
                       if r[key] is not None])
    return alt.Chart(df, title=title).mark_line(point=True).encode(
        x=alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="top-1 accuracy"),
        color=alt.Color("split:N", title=""),
        tooltip=["epoch", "size", "split", alt.Tooltip("accuracy:Q", format=".3f")]
    ).properties(height=260)


def page_comparison(folder: str) -> None:
    """A recipe comparison (``augmine recipe compare``): the table and every arm's
    train/val curves side by side, on the same axes."""
    import pandas as pd

    from augmine.experiments.compare_results import ComparisonDir, format_comparison, is_comparison

    st.header("Recipe comparison")
    if not folder or not is_comparison(folder):
        st.info("Start the app with a comparison folder to see it here: "
                "`augmine app runs/compare-none-vs-light` (the folder `augmine recipe "
                "compare` wrote).")
        return
    results_path = ComparisonDir(folder).results_path
    results = load_comparison(folder, results_path.stat().st_mtime if results_path.is_file()
                              else 0.0)
    lines = format_comparison(results).splitlines()
    st.caption(lines[0])
    table = pd.DataFrame(appdata.comparison_rows(results))
    st.dataframe(table, hide_index=True, key="comparison_table", column_config={
        c: st.column_config.NumberColumn(format="%.1f") for c in table.columns
        if c.endswith(("%", "(pts)"))})
    st.caption(lines[-1])
    arms = results["arms"]
    for start in range(0, len(arms), 3):
        cols = st.columns(3)
        for col, arm in zip(cols, arms[start:start + 3]):
            with col:
                st.altair_chart(curve_chart(arm["curve"], arm["name"]),
                                key=f"curve_{arm['name']}")


# --------------------------------------------------------------------------- page 4

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
    strip = appdata.clean_and_augmented(read_image(path), recipe, size, seed)
    return appdata.png_bytes(appdata.pad(appdata.upscale_nearest(strip, 2 * THUMB), GAP))


def page_affinity(run_path: str, data_root: str | None) -> None:
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
                f"`{appdata.affinity_command(run)}`")
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
    cell = appdata.affinity_cell(result, c, k)
    m1, m2, m3 = st.columns(3)
    m1.metric("clean accuracy", f"{cell['clean']:.0%}")
    m2.metric("drop (points)", f"{100 * cell['drop']:+.1f}")
    m3.metric("95% interval", f"[{100 * cell['low']:+.1f}, {100 * cell['high']:+.1f}]")
    root = data_root or result.get("data")
    transforms_json = json.dumps(column_recipe(result, k).transforms)
    items, missing = [], 0
    for i in cell["order"][:n]:
        path = appdata.resolve_image_path(str(result["val_paths"][i]), root)
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


# --------------------------------------------------------------------------- main

def mismatch_warning(run_path: str, data_path: str) -> None:
    """A warning above every page when the dataset opened with the run (the sidebar's, else
    the run's recorded one) does not hold the classes the run was trained on."""
    if not run_path:
        return
    root = data_path or appdata.run_data_root(run_path)
    if not root or not Path(root).is_dir():
        return
    try:
        diff = appdata.run_class_mismatch(run_path, load_index(root))
    except AugmineError:
        return                        # the page itself says what is wrong with the folder
    if diff:
        st.warning(diff)



def main() -> None:
    st.set_page_config(page_title="augmine", layout="wide")
    args = cli_args()
    bad_page = page_from_url()
    page, data_path, run_path = sidebar(args)
    if bad_page:
        st.warning(bad_page)
    try:
        mismatch_warning(run_path, data_path)
        if page == PAGES[0]:
            page_browser(dataset_root(data_path), run_path)
        elif page == PAGES[2]:
            page_comparison(run_path)
        elif page == PAGES[3]:
            page_affinity(run_path, data_path or None)
        else:
            root = data_path or None
            page_confusion(run_path, root)
    except Exception as exc:  # the page shows one clear line, never a traceback
        show_error(exc)


main()
