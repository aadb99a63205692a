"""A run's mining rounds as the rounds page shows them: each round's report (read through
:class:`~augmine.rounds.plans.RoundState`), its before/after/control table with the
intervals, its chosen classes and the classes that lost."""

from __future__ import annotations

from augmine.analysis.effects import measurable_losses
from augmine.rounds.plans import RoundState

NO_ROUNDS_HINT = ("{run} has no mining round yet: `augmine mine round {run}` trains one "
                  "against its control")


def round_reports(run_dir) -> list[dict]:
    """The complete ``round-N`` reports of ``run_dir`` (path or RunDir), in round order;
    [] when it has none. A folder that is no run is a one-line AugmineError."""
    state = RoundState.read(run_dir)
    done = {f"round-{n}" for n in state.done}
    return [r for r in state.reports if r["stage"] in done]


def round_heading(report: dict) -> str:
    """``round 1 (oversample, 2 epochs from phase-1): chose A, B``."""
    meta = report.get("meta") or {}
    effect = report.get("effect") or {}
    epochs = meta.get("epochs")
    how = ", ".join(str(x) for x in (
        meta.get("mode"), f"{epochs} epoch{'s' if epochs != 1 else ''}" if epochs else None)
        if x)
    start = f" from {meta['start_stage']}" if meta.get("start_stage") else ""
    chosen = effect.get("chosen") or (report.get("plan") or {}).get("weak_names") or []
    return (f"{report['stage'].replace('-', ' ')} ({how}{start})"
            + (f": chose {', '.join(chosen)}" if chosen else ""))


def measurement_line(effect: dict) -> str:
    """Where the round was chosen and measured, and against what."""
    against = "its control (the same steps with plain sampling)" if effect["control"] else \
        "its start only (no control: after - before mixes the round with more training)"
    return (f"Chosen on {effect['selection']}, measured on {effect['measurement']} "
            f"({effect['measurement_images']} images) against {against}; 95% bootstrap "
            f"intervals over {effect['reps']} resamples.")


def _interval(cell) -> str:
    return "" if cell is None else f"{cell['lo']:+.3f} to {cell['hi']:+.3f}"


def _verdict(cell, lost: bool) -> str:
    """``lost``: the row is a measurable loss (:func:`augmine.analysis.effects.measurable_losses`,
    the rule the printed verdict uses)."""
    if cell is None:
        return ""
    if lost:
        return "lower (interval below zero)"
    if cell["lo"] > 0:
        return "higher (interval above zero)"
    return "no measurable change"


def effect_rows(effect: dict) -> list[dict]:
    """One row per metric of a round's effect table (fractions: top-1 0.452 = 45.2%):
    before, after, control, after - before and the effect net of control, each difference
    with its 95% interval as text, and the verdict: whether the interval of the effect net
    of control (after - before without a control) lies below or above zero."""
    rows = []
    lost = set(measurable_losses(effect["table"], bool(effect["control"])))
    for metric, row in effect["table"].items():
        value = lambda k: None if row[k] is None else row[k]["value"]  # noqa: E731
        ref = "effect" if effect["control"] else "change"
        rows.append({"metric": metric, "before": value("before"), "after": value("after"),
                     "control": value("control"), "after - before": value("change"),
                     "after - before 95% CI": _interval(row["change"]),
                     "net of control": value("effect"),
                     "net of control 95% CI": _interval(row["effect"]),
                     "verdict": _verdict(row[ref], metric in lost)})
    return rows


def class_rows(effect: dict) -> list[dict]:
    """The chosen (then partner) classes' F1 on the measurement images: before, after,
    control and after - control."""
    by_name = {c["name"]: c for c in effect["per_class"]}
    rows = []
    for role, names in (("chosen", effect["chosen"]), ("partner", effect.get("partners") or [])):
        for name in names:
            c = by_name[name]
            rows.append({"class": name, "role": role, "support": c["support"],
                         "F1 before": c["before"], "F1 after": c["after"],
                         "F1 control": c["control"], "net of control": c["effect"]})
    return rows


def loser_rows(effect: dict) -> list[dict]:
    """The classes whose F1 fell most against the control (else the start), worst first."""
    ref = "control" if effect["reference"] == "control" else "start"
    return [{"class": c["name"], "support": c["support"], f"F1 {ref}": c["ref"],
             "F1 after": c["after"], "change": c["delta"]} for c in effect["losers"]]
