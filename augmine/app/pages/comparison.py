"""The recipe comparison page: the table ``augmine recipe compare`` prints and every arm's
train/val curves side by side."""

from __future__ import annotations

import streamlit as st

from augmine.app.data.reports import comparison_rows


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


def render(folder: str) -> None:
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
    table = pd.DataFrame(comparison_rows(results))
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
