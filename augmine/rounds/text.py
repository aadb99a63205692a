"""Round results as lines of text for people: plans, a round's effect against its control,
``mine compare``'s table and the round lines ``mine analyze``, ``mine round`` and the demo
print. Pure formatting of plans and report dicts: nothing is read or trained here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from augmine.analysis.plans import OversamplingPlan
from augmine.rounds.arms import describe_arm, format_pairs
from augmine.rounds.runner import format_rule, seed_spread

if TYPE_CHECKING:
    from augmine.rounds.runner import RoundResult


def format_plan(plan: OversamplingPlan, counts) -> list[str]:
    """Lines for people: each chosen class, its factor and its old -> new share of an epoch."""
    counts = np.asarray(counts)
    lines = [f"{'class':<32} {'F1':>6} {'factor':>7} {'images':>7} {'old share':>10} "
             f"{'new share':>10}"]
    f1 = (plan.policy or {}).get("f1") or {}
    if (plan.policy or {}).get("selection"):
        lines.insert(0, f"(F1 on the {plan.policy['selection']} selection images: "
                        f"{plan.policy.get('selection_images')} images)")
    for row in plan.summary(counts):
        f = f1.get(row["name"])
        lines.append(f"{row['name'][:32]:<32} {'-' if f is None else f'{f:.3f}':>6} "
                     f"{row['factor']:>7.2f} {row['count']:>7} {row['old_share']:>10.2%} "
                     f"{row['new_share']:>10.2%}")
    old, new = plan.expected_share(counts)
    weak = list(plan.weak)
    lines.append(f"{len(weak)} of {plan.num_classes} classes chosen: {old[weak].sum():.1%} of an "
                 f"epoch before, {new[weak].sum():.1%} after; epoch {int(counts.sum())} -> "
                 f"{plan.expected_epoch_length(counts):.0f} images"
                 + ("" if plan.factors[weak].max(initial=1.0) > 1 else
                    " (factor 1: no extra samples)")
                 + (f"; weak classes use recipe {plan.recipe}" if plan.recipe else ""))
    pairs = format_pairs(plan)
    if pairs:
        lines.append("confusion partners on the selection images (oversampled with them by "
                     "--mode pairs):")
        lines += pairs
    return lines


def _ci(cell, pct: bool = False, sign: bool = False) -> str:
    """A cell ``{value, lo, hi}`` as "value [lo, hi]" ("-" for None); ``pct``: in points."""
    if cell is None:
        return "-"
    k = 100 if pct else 1
    f = (lambda v: f"{v * k:+.1f}") if pct and sign else (lambda v: f"{v * k:.1f}") if pct \
        else (lambda v: f"{v:+.3f}") if sign else (lambda v: f"{v:.3f}")
    return f"{f(cell['value'])} [{f(cell['lo'])}, {f(cell['hi'])}]"


def _value(cell, pct: bool = False) -> str:
    """A cell's value alone: a percentage (``pct``) or three decimals; "-" for None."""
    return "-" if cell is None else f"{cell['value']:.1%}" if pct else f"{cell['value']:.3f}"


def format_effect(effect: dict, top: int = 5) -> list[str]:
    """Lines for people: the effect table (before, after, control, change and effect net of
    control with 95% intervals), the chosen classes, who lost and the warning."""
    lines = [f"chosen on {effect['selection']}; measured on {effect['measurement']} "
             f"({effect['measurement_images']} images, 95% bootstrap intervals, "
             f"{effect['reps']} resamples)"]
    head = f"{'':<10} {'before':>7} {'after':>7} {'control':>8} {'after-before':>24} " \
           f"{'net of control':>24}"
    lines.append(head)
    for m, row in effect["table"].items():
        pct = m == "top-1"
        lines.append(f"{m:<10} {_value(row['before'], pct):>7} {_value(row['after'], pct):>7} "
                     f"{_value(row['control'], pct):>8} {_ci(row['change'], pct, True):>24} "
                     f"{_ci(row['effect'], pct, True):>24}")
    lines += seed_spread(effect)
    if not effect["control"]:
        lines.append("no control round (--no-control): the effect net of control is "
                     "unmeasured; after-before mixes the round with more training")
    by_name = {c["name"]: c for c in effect["per_class"]}
    groups = [("chosen", effect["chosen"])]
    if effect.get("partners"):
        groups.append(("partner", effect["partners"]))
    for what, names in groups:
        lines.append(f"{what} classes, F1 before -> after (control) [support]:")
        for n in names:
            c = by_name[n]
            ctrl = "" if c["control"] is None else f" (control {c['control']:.3f}, net " \
                                                   f"{c['effect']:+.3f})"
            lines.append(f"  {n[:28]:<28} {c['before']:.3f} -> {c['after']:.3f}{ctrl} "
                         f"[{c['support']}]")
    losers = effect["losers"][:top]
    ref = effect["reference"]
    if losers:
        what = "control" if ref == "control" else "start"
        lines.append(f"F1 fell most (against the {what}):")
        width = max(len(c["name"]) for c in losers)
        for c in losers:
            lines.append(f"  {c['name']:<{width}}  {what} {c['ref']:.3f}, round {c['after']:.3f} "
                         f"({c['delta']:+.3f}) [{c['support']}]")
    for key in ("note", "warning"):                  # the verdict (losses) last
        if effect.get(key):
            lines.append(effect[key])
    return lines


def format_compare(result: dict) -> list[str]:
    """One table: each mode's effect net of control (95% interval) per metric."""
    effects = result["effects"]
    first = next(iter(effects.values()))
    lines = [f"{len(result['plan'].weak)} classes ({', '.join(result['plan'].weak_names)}), "
             f"{result['epochs']} epochs = {result['steps']} steps per mode; chosen on "
             f"{first['selection']}, measured on {first['measurement']} "
             f"({first['measurement_images']} images)",
             *([f"partner classes (the chosen classes' confusion partners on the selection "
                f"images; pairs and head repeat them too): {', '.join(first['partners'])}"]
               if first.get("partners") else []),
             "effect net of control [95% bootstrap interval]:",
             f"{'mode':<13}" + "".join(f" {m:>24}" for m in first["table"])]
    for mode, eff in effects.items():
        lines.append(f"{mode:<13}" + "".join(
            f" {_ci(row['effect'], m == 'top-1', True):>24}" for m, row in eff["table"].items()))
    for mode in result.get("skipped") or {}:
        lines.append(f"{mode:<13} skipped: it would train exactly what the control trains here "
                     "(no result to measure)")
    lines.append(f"{'control':<13}" + "".join(
        f" {_value(row['control'], m == 'top-1') + ' (absolute)':>24}"
        for m, row in first["table"].items()))
    for mode, eff in effects.items():
        lines += [f"{mode}: {line}" for line in seed_spread(eff)[1:]]
    lines += seed_spread(first)[:1]
    for mode, eff in effects.items():
        for key in ("note", "warning"):
            if eff.get(key):
                lines.append(f"{mode}: {eff[key]}")
    return lines


def format_changes(report: dict) -> list[str]:
    """Lines for people: accuracy, macro F1 and each class's F1 before -> after of a round
    report without an effect (written before rounds had a control)."""
    b, a = report["before"], report["after"]
    lines = [f"  {'accuracy':<30} {b['accuracy']:.1%} -> {a['accuracy']:.1%} "
             f"({(a['accuracy'] - b['accuracy']) * 100:+.1f} pt)",
             f"  {'macro F1':<30} {b['macro_f1']:.3f} -> {a['macro_f1']:.3f}"]
    for ch in report["changes"]:
        before = "-" if ch["before"] is None else f"{ch['before']:.3f}"
        delta = "" if ch["delta"] is None else f" ({ch['delta']:+.3f})"
        lines.append(f"  F1 {ch['name'][:27]:<27} {before} -> {ch['after']:.3f}{delta}")
    return lines


def format_round_outcome(report: dict) -> list[str]:
    """A round report's outcome, indented by two spaces: its effect table
    (:func:`format_effect`), else (a report from before controls) its changes
    (:func:`format_changes`); [] when it has neither. The keep rule's decision follows the
    effect (:func:`~augmine.rounds.runner.format_rule`)."""
    if report.get("effect"):
        rule = (report.get("meta") or {}).get("rule")
        return [f"  {line}" for line in format_effect(report["effect"])
                + (format_rule(rule) if rule else [])]
    return format_changes(report) if report.get("changes") else []


def current_model_line(run_dir, round_no: int, goes_on_from: str = "round") -> str:
    """The one line saying which model is the run's current model (``last.keras``) after
    round N: the round's, or (the keep rule rejected it, ``goes_on_from`` ``"start"`` /
    ``"control"``) its start's or control's; the best checkpoints stay the phases' (rounds
    never move them)."""
    from augmine.runs.rundir import RunDir

    run = RunDir.of(run_dir)
    last = run.checkpoint("last")
    if goes_on_from == "round":
        head = f"round {round_no}'s model is now the run's current model, {last}"
    else:
        head = (f"the rule rejected round {round_no}: the run goes on from the "
                f"{goes_on_from}'s model, now the run's current model, {last}")
    return (f"{head} (the next round continues from it); the best checkpoints stay the "
            f"phases' (rounds never move them): `augmine evaluate {run} --checkpoint last` "
            "scores it")


def format_round(result: RoundResult) -> list[str]:
    """What ``mine round`` prints after a round: the round (mode, epochs, LR, chosen
    classes), its pairs (``pairs`` mode) and its effect (:func:`format_effect`)."""
    round_no, plan, mode, report = result.round, result.plan, result.mode, result.report
    meta = report["meta"]
    lo, hi = meta.get("lr") or (None, None)
    lr = f", LR {lo:g} -> {hi:g} -> {lo:g}" if lo is not None else ""
    again = ", resumed after an interruption" if result.resumed else ""
    lines = [f"round {round_no} ({describe_arm(plan, mode)}; {meta.get('epochs')} epochs{lr}"
             f"{again}) chose {len(plan.weak)} classes: {', '.join(plan.weak_names)}"]
    if mode == "pairs":
        lines.append("pairs (each chosen class with its confusion partners on the selection "
                     "images):")
        lines += format_pairs(plan)
    rule = meta.get("rule")
    lines += format_effect(report["effect"]) + (format_rule(rule) if rule else [])
    if result.run:
        lines.append(current_model_line(result.run, round_no,
                                        (rule or {}).get("goes_on_from", "round")))
    return lines
