"""The confusion explorer: a run's per-stage scores, the weakest classes' confusions, a
confused pair's images side by side, per-class F1 across stages and suspect samples."""

from __future__ import annotations

import numpy as np
import streamlit as st

from augmine.app.cached import THUMB, display_image
from augmine.app.data.folders import run_data_root
from augmine.app.data.images import resolve_image_path
from augmine.app.data.reports import (best_line, pair_samples, read_suspects, suspects_caption,
                                      weakest_submatrix)
from augmine.core.errors import AugmineError


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
    return read_suspects(run_dir, stage)


@st.cache_data(show_spinner=False)
def load_history(run_dir: str, classes: tuple, stamp: tuple) -> dict:
    from augmine.analysis.reports import history

    return history(run_dir, list(classes) or None)


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


def render(run_path: str, data_root: str | None) -> None:
    """The page for run folder ``run_path``; its images from ``data_root``, else the
    dataset the run recorded."""
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
    best = best_line(run_dir)
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
            idx, sub = weakest_submatrix(cm, per_class["f1"].to_numpy(), k)
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
    root = data_root or run_data_root(run_dir)
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
        sel = pair_samples(preds["y_true"], preds["probs"], a, b)
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
                        p = resolve_image_path(
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
        st.caption(suspects_caption(suspects))
        items = []
        for s in suspects:
            p = resolve_image_path(str(s.get("path") or ""), root)
            if p is None:
                continue
            cap = f"{s.get('name', '')}: {s['self_confidence']:.2f}"
            if s.get("predicted_name") and s["predicted_name"] != s.get("name"):
                cap += f" → {s['predicted_name']} ({s['predicted_prob']:.2f})"
            items.append({"image": display_image(p, THUMB), "caption": cap})
        pair_grid(f"{len(items)} suspect images", items, 8)
