"""``report.md``: a stage report dict as Markdown for people (accuracy, the round's effect or
before/after, weakest and strongest classes, confused pairs, the plan, the plots or how to
draw them)."""

from __future__ import annotations

from augmine.analysis.pairs import describe_pair, describe_symmetric


def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:.1%}" if pct else f"{v:.3f}"


def render_markdown(report: dict, plots_hint: str | None) -> str:
    """The human-readable ``report.md`` of a report dict. ``plots_hint``: None when
    ``f1.png`` and ``confusion.png`` are beside it (they are shown), else the line that says
    how to draw them (a report never links a plot that is not there)."""
    by_name = {c["name"]: c for c in report["per_class"]}
    lines = [f"# Report {report['stage']}", ""]
    size = f", {report['size']} px" if report.get("size") else ""
    lines += [f"- kind: {report['kind']}{size}; {report['num_samples']} validation images, "
              f"{report['num_classes']} classes",
              f"- accuracy: {_fmt(report['accuracy'], True)}; top-5: "
              f"{_fmt(report['top5_accuracy'], True)}; macro F1: {_fmt(report['macro_f1'])}", ""]
    if report.get("effect"):
        lines += _effect_markdown(report["effect"], (report.get("before") or {}).get("stage"))
    elif report.get("changes"):
        b, a = report["before"], report["after"]
        lines += [f"## Before ({b.get('stage') or 'previous'}) and after", "",
                  "| | before | after | change |", "|---|---|---|---|",
                  f"| accuracy | {_fmt(b['accuracy'], True)} | {_fmt(a['accuracy'], True)} | "
                  f"{_delta(b['accuracy'], a['accuracy'], True)} |",
                  f"| macro F1 | {_fmt(b['macro_f1'])} | {_fmt(a['macro_f1'])} | "
                  f"{_delta(b['macro_f1'], a['macro_f1'])} |"]
        for ch in report["changes"]:
            lines.append(f"| F1 {ch['name']} | {_fmt(ch['before'])} | {_fmt(ch['after'])} | "
                         f"{_delta(ch['before'], ch['after'])} |")
        lines.append("")
    for title, names in (("Weakest classes", report["weakest"]),
                         ("Strongest classes", report["strongest"])):
        lines += [f"## {title}", "", "| class | precision | recall | F1 | support |",
                  "|---|---|---|---|---|"]
        for n in names:
            c = by_name[n]
            lines.append(f"| {n} | {_fmt(c['precision'])} | {_fmt(c['recall'])} | "
                         f"{_fmt(c['f1'])} | {c['support']} |")
        lines.append("")
    lines += ["## Most confused pairs", ""]
    lines += [f"- {describe_pair(p)}" for p in report["confused_pairs"]] or ["- none"]
    lines += ["", "## Most confused pairs, both directions", ""]
    lines += [f"- {describe_symmetric(p)}" for p in report["symmetric_pairs"]] or ["- none"]
    lines.append("")
    plan = report.get("plan")
    lines += ["## Plan", ""]
    if plan:
        pol = plan.get("policy") or {}
        lines.append(f"- policy: {pol.get('policy', '?')}, scheme {pol.get('scheme', '?')}, "
                     f"factor {pol.get('factor', '?')}, cap {pol.get('cap')}; "
                     f"recipe for weak classes: {plan.get('recipe') or 'the phase recipe'}")
        mode = (report.get("meta") or {}).get("mode")
        if mode:
            lines.append(f"- mode: {mode}")
        for i in plan["weak"]:
            lines.append(f"- {plan['class_names'][i]}: x{plan['factors'][i]:.2f}")
    else:
        lines.append("- none (a training phase)")
    lines += ["", plots_hint, ""] if plots_hint else [
        "", "![per-class F1](f1.png)", "", "![confusions of the weakest classes](confusion.png)",
        ""]
    return "\n".join(lines)


def _cell(c, pct: bool = False, sign: bool = False) -> str:
    if c is None:
        return "-"
    k, d = (100, 1) if pct else (1, 3)
    f = (lambda v: f"{v * k:+.{d}f}") if sign else (lambda v: f"{v * k:.{d}f}")  # noqa: E731
    return f"{f(c['value'])} [{f(c['lo'])}, {f(c['hi'])}]" + (" pt" if pct and sign else
                                                              "%" if pct else "")


def _effect_markdown(effect: dict, start: str | None) -> list[str]:
    lines = [f"## Round effect (from {start or 'the previous stage'})", "",
             f"- weak classes chosen on: {effect['selection']}; measured on: "
             f"{effect['measurement']} ({effect['measurement_images']} images)",
             "- control: " + ("plain sampling from the same start, same steps, learning rate "
                              "and seeds" if effect["control"] else
                              "none (--no-control): the effect net of control is unmeasured; "
                              "after - before mixes the round with more training"),
             f"- intervals: 95% bootstrap over the measurement images ({effect['reps']} "
             "paired resamples)", ""]
    if effect.get("warning"):
        lines += [f"**{effect['warning']}**", ""]
    if effect.get("note"):
        lines += [effect["note"], ""]
    lines += ["| | before | after | control | after - before | net of control |",
              "|---|---|---|---|---|---|"]
    for m, row in effect["table"].items():
        pct = m == "top-1"
        lines.append(f"| {m} | {_cell(row['before'], pct)} | {_cell(row['after'], pct)} | "
                     f"{_cell(row['control'], pct)} | {_cell(row['change'], pct, True)} | "
                     f"{_cell(row['effect'], pct, True)} |")
    by_name = {c["name"]: c for c in effect["per_class"]}
    lines += ["", "| chosen class | support | F1 before | after | control | net of control |",
              "|---|---|---|---|---|---|"]
    partners = effect.get("partners") or []
    for n in list(effect["chosen"]) + list(partners):
        c = by_name[n]
        tag = " (confusion partner)" if n in partners else ""
        lines.append(f"| {n}{tag} | {c['support']} | {_fmt(c['before'])} | {_fmt(c['after'])} | "
                     f"{_fmt(c['control'])} | {_delta(c['control'], c['after'])} |")
    ref = "control" if effect["control"] else "start"
    lines += ["", f"### F1 fell most (against the {ref})", ""]
    lines += [f"- {c['name']} [{c['support']}]: {ref} {c['ref']:.3f}, round {c['after']:.3f} "
              f"({c['delta']:+.3f})" for c in effect["losers"]] or ["- none fell"]
    lines.append("")
    return lines


def _delta(b, a, pct: bool = False) -> str:
    if a is None or b is None:
        return "-"
    d = a - b
    return f"{d * 100:+.1f} pt" if pct else f"{d:+.3f}"
