"""The rounds page: each mining round of the run against its control, from its report:
before/after/control, the net effects with their intervals, the chosen classes and the
classes that lost."""

from __future__ import annotations

import streamlit as st

from augmine.app.data.rounds import (NO_ROUNDS_HINT, class_rows, effect_rows, loser_rows,
                                     measurement_line, round_heading, round_reports)

NUMBER = st.column_config.NumberColumn(format="%.3f")
SIGNED = st.column_config.NumberColumn(format="%+.3f")


@st.cache_data(ttl=10, show_spinner=False)
def load_rounds(run_path: str) -> list[dict]:
    """The run's round reports (:func:`augmine.app.data.rounds.round_reports`); re-read
    every 10 s, so a round just finished appears."""
    return round_reports(run_path)


def table(rows: list[dict], key: str) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    st.dataframe(df, hide_index=True, key=key, column_config={
        c: SIGNED if c in ("after - before", "net of control", "change") else NUMBER
        for c in df.columns if df[c].dtype.kind == "f"})


def render(run_path: str) -> None:
    """Every round of ``run_path``, newest first; a one-line hint without rounds."""
    st.header("Rounds")
    if not run_path:
        st.info("Start the app with a run folder to see its rounds: `augmine app RUN`.")
        return
    reports = load_rounds(run_path)
    if not reports:
        st.info(NO_ROUNDS_HINT.format(run=run_path))
        return
    for report in reversed(reports):
        stage = report["stage"]
        st.subheader(round_heading(report))
        effect = report.get("effect")
        if not effect:
            st.info(f"{stage}'s report was written before rounds had a control: it holds "
                    "no effect to show")
            continue
        st.caption(measurement_line(effect))
        table(effect_rows(effect), f"{stage}:effect")
        st.caption("Values are fractions (top-1 0.452 = 45.2%). Net of control = after - "
                   "control: what the round did beyond the same training without it. Verdict: "
                   "where the 95% interval of the net effect (after - before without a "
                   "control) lies against zero.")
        if effect.get("warning"):
            st.warning(effect["warning"])
        if effect.get("note"):
            st.info(effect["note"])
        table(class_rows(effect), f"{stage}:classes")
        losers = loser_rows(effect)
        if losers:
            st.markdown(f"**F1 fell most** (against the "
                        f"{'control' if effect['reference'] == 'control' else 'start'}):")
            table(losers, f"{stage}:losers")
        else:
            st.caption("No class's F1 fell.")
