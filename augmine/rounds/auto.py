"""``mine auto``: the one command of mining. A round that tries the modes and keeps the best
one that passes the rule, or none.

Round N of ``mine auto`` (:func:`auto_round`):

1. chooses the weak classes on the selection images (the plan's policy, as ``mine plan``);
2. trains each mode and one control from the run's checkpoint in branches, the same plan,
   steps, LR and seeds (:func:`~augmine.rounds.compare.compare_modes`; ``--seeds`` too);
3. judges every mode with the keep rule on the selection images
   (:func:`~augmine.rounds.keep.keep_decision` against the start and the control) and keeps
   the passing mode with the highest chosen-class F1 there, or none: then the run goes on
   from the better of control and start;
4. makes the run go on from that model (the branch's ``last.keras``, ``state.json`` and
   history; the best checkpoints stay) and writes the ``round-N`` report: what the user
   got against the control on the measurement images, with intervals.

Resumable: the run as round N found it is snapshotted first (``mode: auto``); a killed
``mine auto`` puts that snapshot back, finds the finished branches done and trains the rest.
The report, written last, makes the round done (``mine round --redo`` redoes it as a round).
"""

from __future__ import annotations

import logging

from augmine.analysis.reports import write_stage_report
from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.rounds.arms import MODE_TABLE, arm
from augmine.rounds.compare import compare_modes
from augmine.rounds.keep import format_rule, keep_decision, selection_labels
from augmine.rounds.measure import measure_round
from augmine.rounds.plans import load_run_index, mining_settings
from augmine.rounds.state import RoundState
from augmine.rounds.text import format_effect
from augmine.runs.checkpoints import evaluation_settings
from augmine.runs.rundir import RunDir

log = logging.getLogger("augmine")

# the modes ``mine auto`` tries by default, cheapest first (those MODE_TABLE has): the head
# alone, distillation against the start, milder augmentation, loss weights, then extra
# samples; the keep rule rejects what harms (``head`` lowered top-1 on tiny-imagenet-20). ``recipe`` is left out (a stronger recipe on a weak class lost every time).
AUTO_ORDER = ("head", "distill", "gentle", "class-weight", "oversample", "pairs")


def default_modes() -> tuple[str, ...]:
    """:data:`AUTO_ORDER`'s modes that :data:`~augmine.rounds.arms.MODE_TABLE` has."""
    return tuple(m for m in AUTO_ORDER if m in MODE_TABLE)


def stage_one_echo(echo):
    """``echo`` for :func:`~augmine.rounds.compare.compare_modes` inside ``mine auto``: its
    lines start ``auto: stage 1/2, `` instead of ``compare: `` (``auto: stage 1/2, training
    mode head (1/3), ...``). The ETA is the round-wide one every epoch prints
    (:func:`~augmine.rounds.runner.round_progress`, seed arms included)."""
    def say(line: str) -> None:
        if line.startswith("compare: "):
            rest = line.removeprefix("compare: ")
            verb = "" if rest.startswith("skipping") else "training "
            line = f"auto: stage 1/2, {verb}{rest}"
        echo(line)
    return say


def _adopt(run: RunDir, branch: RunDir) -> None:
    """The run goes on from ``branch``'s model: its last checkpoint, history and state."""
    for src, dst in ((branch.checkpoint("last"), run.checkpoint("last")),
                     (branch.history_path, run.history_path), (branch.state_path,
                                                               run.state_path)):
        atomic.copy_file(src, dst)


def auto_round(run_dir, modes=None, epochs: int | None = None, seeds: int | None = None,
               progress: bool = True, echo=None, **plan_settings) -> dict:
    """Run round N of ``run_dir`` as ``mine auto`` (see the module doc). ``modes``: default
    :func:`default_modes`. Returns ``{"round", "report", "decisions": {mode: decision},
    "kept": mode or None, "goes_on_from", "compare": compare_modes' result}``."""
    say = echo or log.info
    modes = tuple(modes or default_modes())
    for m in modes:
        arm(m)
    state = RoundState.of(run_dir)
    run = state.run
    round_no = state.next
    started = run.snapshot_meta(round_no)
    if started is not None and started.get("mode") != "auto":
        raise AugmineError(f"round {round_no} of {run} was interrupted as a {started.get('mode')} "
                           f"round; finish it with `augmine mine round {run}` or restart it "
                           f"with `augmine mine round {run} --redo`")
    if started is not None:
        say(f"auto: resuming round {round_no}")
        run.restore(round_no)
        state = RoundState.read(run)
    settings = mining_settings(run, **plan_settings)
    res = compare_modes(state, epochs=epochs, modes=modes, progress=progress, seeds=seeds,
                        echo=stage_one_echo(say), **plan_settings)
    plan, selection, probs = res["plan"], res["selection"], res["probs"]
    modes = tuple(m for m in modes if m in res["effects"])   # compare skips no-op modes
    if not modes:
        raise AugmineError(f"mine auto: none of the modes would train anything its control "
                           f"does not; plan more emphasis (`augmine mine plan {run} --factor "
                           "3`) or choose other --modes")
    start = state.latest_report
    state.write_plan(round_no, plan)
    if started is None:
        run.snapshot(round_no, {"round": round_no, "mode": "auto", "plan": plan.to_dict(),
                                "start_stage": start["stage"],
                                "start_step": run.read_state().step})
    say(f"auto: stage 2/2, the keep rule on the {selection} selection images")
    index = load_run_index(run)
    group = RunDir(res["group"])
    branches = {m: RunDir(group.path / m) for m in (*modes, "control")}
    y, preds = selection_labels(
        index, selection, run.config.seed, probs,
        {"start": run.checkpoint("last"),
         **{m: b.checkpoint("last") for m, b in branches.items()}}, run.config)
    tol = float(settings["keep_tolerance"])
    decisions = {m: keep_decision(y, preds["start"], preds[m], preds["control"],
                                  num_classes=index.num_classes, chosen=plan.weak,
                                  tolerance=tol) for m in modes}
    passed = [m for m in modes if decisions[m]["kept"]]
    kept = max(passed, key=lambda m: (decisions[m]["scores"]["round"]["chosen F1"],
                                      decisions[m]["scores"]["round"]["top-1"]), default=None)
    goes_on = kept or decisions[modes[0]]["goes_on_from"]
    if goes_on != "start":
        _adopt(run, branches[goes_on])
    final = probs[goes_on]
    effect = (res["effects"][kept] if kept else
              measure_round(index, selection, run.config.seed, plan.weak, probs["start"],
                            final, probs["control"]))
    now = run.read_state()
    report = write_stage_report(
        run, f"round-{round_no}", index.val.labels, final, list(index.class_ids),
        list(index.class_names),
        meta={"kind": "round", "round": round_no, "mode": kept or "none", "auto": True,
              "size": evaluation_settings(run.config)[0], "epochs": res["epochs"],
              "epochs_done": now.epochs_done, "step": now.step,
              "steps": res["steps"], "start_stage": start["stage"], "seeds": res["seeds"],
              "goes_on_from": goes_on, "decisions": decisions},
        plan=plan, effect=effect, before=start, val_paths=index.val.paths)
    return {"round": round_no, "report": report, "decisions": decisions, "kept": kept,
            "goes_on_from": goes_on, "compare": res}


def format_auto(result: dict) -> list[str]:
    """Lines for people: each mode's verdict on the selection images, the mode kept (or
    none), which model the run goes on from and what that gives against the control on the
    measurement images (:func:`~augmine.rounds.text.format_effect`'s table)."""
    lines = [f"round {result['round']} (mine auto) chose {len(result['compare']['plan'].weak)} "
             f"classes: {', '.join(result['compare']['plan'].weak_names)}"]
    for mode, decision in result["decisions"].items():
        lines.append(f"  {mode}: {format_rule(decision)[0]}")
    kept = result["kept"]
    lines.append(f"kept: {kept}" if kept else "no mode passed the rule on the selection images")
    goes_on = result["goes_on_from"]
    lines.append(f"the run goes on from the {goes_on}"
                 f"{'' if goes_on in ('start', 'control') else ' mode'}'s model")
    lines.append("what the run ends up with, on the measurement images "
                 "(after = the model the run goes on from):")
    return lines + format_effect(result["report"]["effect"])
