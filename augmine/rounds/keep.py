"""The rule that keeps a round only when it helps, judged on the selection images.

After a round, its model, its control and its start are scored on the selection images
only (the half of val that chose the classes, or the held-out slice of train; never the
measurement images). :func:`keep_decision` (pure numpy) keeps the round when the chosen
classes' mean F1 is above both the start's and the control's and its top-1 is not below
either by more than ``mining.keep_tolerance`` points (its default is on the config schema,
:class:`~augmine.runs.sections.MiningConfig`); else the run goes on
from the better of control and start (higher top-1, then chosen F1; a tie goes to the
control). :func:`apply_decision` makes the run's ``last.keras`` that model;
:func:`rule_outcome` measures what the user ends up with against the control on the
measurement images.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from augmine.analysis.effects import cell_text, round_metrics
from augmine.analysis.splits import selection_split
from augmine.core import atomic
from augmine.runs.rundir import RunDir


def _scores(y_true, pred, num_classes: int, chosen) -> dict:
    values = round_metrics(y_true, pred, num_classes, chosen)
    return {"chosen F1": float(values[0]), "top-1": float(values[-2])}


def keep_decision(y_true, start_pred, round_pred, control_pred=None, *, num_classes: int,
                  chosen, tolerance: float) -> dict:
    """Keep a round or not, from predicted labels on the selection images.

    ``y_true`` (N,) labels; ``*_pred`` (N,) predicted labels of the round's start, its
    model and its control (None: no control, the start alone is the reference); ``chosen``:
    the round's class indices; ``tolerance``: top-1 points the round may lose
    (``mining.keep_tolerance``). Returns
    ``{kept, goes_on_from ("round", "control" or "start"), tolerance, images, scores: {arm:
    {"chosen F1", "top-1"}}, reason}``."""
    y_true = np.asarray(y_true)
    arms = {"round": round_pred, "start": start_pred}
    if control_pred is not None:
        arms["control"] = control_pred
    scores = {k: _scores(y_true, np.asarray(v), num_classes, chosen) for k, v in arms.items()}
    mine = scores["round"]
    refs = [k for k in ("control", "start") if k in scores]
    short = [f"chosen F1 {mine['chosen F1']:.3f} not above the {k}'s "
             f"{scores[k]['chosen F1']:.3f}" for k in refs
             if not mine["chosen F1"] > scores[k]["chosen F1"]]
    short += [f"top-1 {mine['top-1']:.1%} more than {tolerance:g} pt below the {k}'s "
              f"{scores[k]['top-1']:.1%}" for k in refs
              if mine["top-1"] < scores[k]["top-1"] - tolerance / 100 - 1e-12]
    kept = not short
    better = max(refs, key=lambda k: (scores[k]["top-1"], scores[k]["chosen F1"],
                                      k == "control"))
    return {"kept": kept, "goes_on_from": "round" if kept else better,
            "tolerance": float(tolerance), "images": int(len(y_true)), "scores": scores,
            "reason": "; ".join(short) if short else
            f"chosen F1 rose above the {' and '.join(refs)}'s and top-1 held"}


def selection_labels(index, selection: str, seed: int, probs: dict, checkpoints: dict,
                     cfg=None) -> tuple:
    """``(y_true, {arm: predicted labels})`` on the selection images: the selection half of
    ``probs`` (val, ``val-half``), or each arm's checkpoint of ``checkpoints`` evaluated on
    the held-out slice of train (``holdout``, at ``cfg``'s evaluation size and batch)."""
    if selection == "val-half":
        y = np.asarray(index.val.labels, np.int64)
        sel = selection_split(y, seed)[0]
        return y[sel], {k: np.asarray(p)[sel].argmax(axis=1) for k, p in probs.items()}
    from augmine.runs.checkpoints import evaluation_settings
    from augmine.train.evaluation import predict_checkpoint

    out, y = {}, None
    size, batch_size = evaluation_settings(cfg)
    for k, path in checkpoints.items():
        y, p = predict_checkpoint(path, index, size, batch_size, split="holdout")
        out[k] = p.argmax(axis=1)
    return y, out


def apply_decision(run: RunDir, decision: dict, source) -> None:
    """Make ``source`` (the chosen model's ``last.keras``) the run's ``last.keras`` unless the
    round is kept. The state (step, epochs, history) stays as the round left it: the start's
    model is saved with its optimizer at the state's step, so the LR schedule goes on (a
    control trained the same steps already)."""
    if decision["goes_on_from"] == "round":
        return
    if decision["goes_on_from"] == "control":
        atomic.copy_file(source, run.checkpoint("last"))
        return
    from augmine.runs.checkpoints import load_checkpoint, save_checkpoint

    model = load_checkpoint(source)
    model.optimizer.iterations.assign(run.read_state().step)
    save_checkpoint(run, model)


def rule_outcome(effect_of, final_probs, decision: dict | None = None) -> dict:
    """What the user ends up with, on the measurement images: ``effect_of(probs)`` (a
    :func:`~augmine.rounds.measure.measure_round` of ``probs`` as the round's model) of the
    model the run goes on from; ``{metric: {value, lo, hi}}`` net of the control (against
    the start without one)."""
    table = effect_of(final_probs)["table"]
    return {m: row["effect"] or row["change"] for m, row in table.items()}


def format_rule(rule: dict) -> list[str]:
    """Lines for people: the decision on the selection images and what it gives on the
    measurement images (which model the run goes on from:
    :func:`augmine.rounds.text.current_model_line`)."""
    s = rule["scores"]
    nums = ", ".join(f"{k} chosen F1 {v['chosen F1']:.3f} top-1 {v['top-1']:.1%}"
                     for k, v in s.items())
    verdict = "kept" if rule["kept"] else "rejected"
    lines = [f"rule on the {rule['images']} selection images ({nums}; tolerance "
             f"{rule['tolerance']:g} pt): {verdict}: {rule['reason']}"]
    out = rule.get("outcome")
    if out:
        ref = "the control" if rule.get("against") == "control" else "the start"
        lines.append(f"what the run ends up with against {ref} on the measurement images: "
                     + ", ".join(cell_text(m, out[m]) for m in ("chosen F1", "top-1")))
    return lines


def _decision_files(run: RunDir, round_no: int) -> tuple[Path, Path]:
    snap = run.snapshot_dir(round_no)
    return snap / "rule.json", snap / "round-probs.npy"


def clear_decision(run: RunDir, round_no: int) -> None:
    """Forget round N's recorded decision (the round is about to be trained afresh)."""
    for path in _decision_files(run, round_no):
        path.unlink(missing_ok=True)


def judge_round(run: RunDir, index, selection: str, seed: int, round_no: int, chosen,
                probs: dict, tolerance: float, measure) -> tuple[dict, np.ndarray]:
    """Decide round N (:func:`keep_decision` on the selection images), make the run go on
    from the chosen model (:func:`apply_decision`) and measure the outcome
    (:func:`rule_outcome` with ``measure``). ``probs``: val probs of ``start``, ``round``
    and ``control`` (None: no control). Returns ``(decision, the round arm's val probs)``.

    The round's probs and the decision are written to the round's start snapshot before
    the run's checkpoint changes, so a round killed after that point resumes with the same
    decision and numbers (the run's ``last.keras`` then holds the other model)."""
    rule_path, probs_path = _decision_files(run, round_no)
    saved = atomic.read_json(rule_path, f"restart the round with `augmine mine round "
                                        f"{run.path} --redo`")
    stage = f"round-{round_no}"
    sources = {"start": run.snapshot_dir(round_no) / run.checkpoint("last").name,
               "round": run.checkpoint("last"),
               "control": RunDir(run.branch_dir(stage, "control")).checkpoint("last")}
    have = {k: p for k, p in probs.items() if p is not None}
    if saved and probs_path.is_file():
        decision, have["round"] = saved, np.load(probs_path)
    else:
        y, preds = selection_labels(index, selection, seed, have,
                                    {k: sources[k] for k in have}, run.config)
        decision = keep_decision(y, preds["start"], preds["round"], preds.get("control"),
                                 num_classes=index.num_classes, chosen=chosen,
                                 tolerance=tolerance)
        decision["against"] = "control" if "control" in have else "start"
        decision["outcome"] = rule_outcome(measure, have[decision["goes_on_from"]], decision)
        buf = io.BytesIO()
        np.save(buf, np.asarray(have["round"]))
        atomic.write_bytes(probs_path, buf.getvalue())
        atomic.write_json(rule_path, decision)
    apply_decision(run, decision, sources[decision["goes_on_from"]])
    return decision, have["round"]
