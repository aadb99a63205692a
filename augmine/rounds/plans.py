"""Where a run's mining rounds stand (:class:`RoundState`, read once per command) and a
round's plan: the mining settings, where weak classes are chosen (the selection images,
never the ones that measure the round) and the plan made from them.

``mine plan`` writes the plan of the next round (:func:`plan_round`); ``mine round`` and
``mine compare`` make it the same way when no plan was written (:func:`selected_plan`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from augmine.analysis.metrics import confusion_matrix, f1_scores, f1_vector
from augmine.analysis.plans import (apply_holdout, bounded_factor, default_k, make_plan,
                                    OversamplingPlan, selection_split, with_partners)
from augmine.analysis.reports import list_stage_reports, load_predictions, stage_sort_key
from augmine.core.errors import AugmineError
from augmine.runs.config import MiningConfig
from augmine.runs.factories import evaluation_settings
from augmine.runs.rundir import RunDir
from augmine.train.evaluation import predict_checkpoint


# =========================================================================== state
# Where a run's mining rounds stand: :class:`RoundState`, read once per command.
#
# :meth:`RoundState.read` checks the run folder once and parses every complete stage report
# (``report.json``) once; the runner, ``mine plan``/``round``/``compare``/``suspects`` and the
# demo ask it for the round numbers, a round's status, the report a round starts from, the
# latest report and the round plans. The run folder's layout stays with
# :class:`~augmine.runs.rundir.RunDir` (``state.run``).

_ROUND_RE = re.compile(r"^round-(\d+)$")


@dataclass
class RoundState:
    """A run folder's rounds as read at one moment.

    ``run``: the checked :class:`RunDir` (its config is parsed once, on first use);
    ``reports``: the complete stage reports (``report.json`` dicts), phases then rounds.
    A state describes the folder when it was read: read it again after training."""

    run: RunDir
    reports: list[dict] = field(default_factory=list)

    @classmethod
    def read(cls, run_dir) -> "RoundState":
        """Check ``run_dir`` (path or RunDir; one-line error when it is not a run folder)
        and read each of its complete reports once."""
        run = RunDir.of(run_dir).check()
        return cls(run, list_stage_reports(run))

    @classmethod
    def of(cls, run: "RoundState | RunDir | str") -> "RoundState":
        """``run`` itself when it is a RoundState, else :meth:`read` of it."""
        return run if isinstance(run, RoundState) else cls.read(run)

    # ----------------------------------------------------------------------- numbering

    @property
    def done(self) -> list[int]:
        """Numbers of the rounds with a complete report, ascending."""
        return sorted(int(m.group(1)) for m in (_ROUND_RE.match(r["stage"]) for r in self.reports)
                      if m)

    @property
    def next(self) -> int:
        """The number of the next round to run: one after the last complete round."""
        done = self.done
        return (done[-1] + 1) if done else 1

    def status(self, round_no: int) -> str:
        """``"done"`` (report written), ``"interrupted"`` (started, no report) or ``"new"``."""
        if round_no in self.done:
            return "done"
        try:
            started = self.run.snapshot_meta(round_no) is not None
        except AugmineError:
            started = True              # a broken start record: it started (--redo rebuilds it)
        return "interrupted" if started else "new"

    @property
    def latest(self) -> int | None:
        """The highest round that was started (done or interrupted), or None: the one
        ``--redo`` redoes."""
        if self.status(self.next) != "new":
            return self.next
        done = self.done
        return done[-1] if done else None

    # ----------------------------------------------------------------------- reports

    @property
    def latest_report(self) -> dict:
        """The most recent complete report (last round, else last phase); error when none."""
        if not self.reports:
            raise AugmineError(f"{self.run.reports_dir} holds no stage report; train the run "
                               "first (`augmine train`) or check the RUN folder")
        return self.reports[-1]

    def before(self, round_no: int) -> dict:
        """The report round ``round_no`` starts from: the previous round's, else the last
        phase's."""
        key = stage_sort_key(f"round-{round_no}")
        reports = [r for r in self.reports if stage_sort_key(r["stage"]) < key]
        if not reports:
            raise AugmineError(f"{self.run.reports_dir} holds no phase report; train the run "
                               "first (`augmine train`)")
        return reports[-1]

    def probs(self, stage: str, index) -> np.ndarray:
        """A stage report's saved val probabilities (N_val, C) float32 in ``index``'s val order.

        When images were left out since the stage (``--skip-bad`` after a file went bad),
        the saved rows are matched to the remaining val images by path."""
        preds = load_predictions(self.run, stage)
        y_now = np.asarray(index.val.labels)
        if len(preds["y_true"]) != len(y_now) and len(preds.get("val_paths", ())) and \
                all(preds["val_paths"]):
            row = {str(p): i for i, p in enumerate(preds["val_paths"])}
            take = [row.get(str(p)) for p in index.val.paths]
            if None not in take:
                preds = {"y_true": preds["y_true"][take], "probs": preds["probs"][take]}
        if len(preds["y_true"]) != len(y_now) or not np.array_equal(preds["y_true"], y_now):
            raise AugmineError(f"{self.run.report_dir(stage)}: its val predictions do not match "
                               f"the dataset's {len(y_now)} val images; train that stage again "
                               "on this dataset")
        return preds["probs"]

    # ----------------------------------------------------------------------- plans

    def has_plan(self, round_no: int) -> bool:
        return self.run.plan_path(round_no).is_file()

    def read_plan(self, round_no: int, index=None) -> OversamplingPlan:
        """The plan of round ``round_no``; aligned to ``index``'s classes when given."""
        where = str(self.run.plan_path(round_no))
        plan = OversamplingPlan.from_dict(self.run.read_plan(round_no), where=where)
        if index is not None:
            plan = plan.aligned_to(index.class_ids, index.class_names, where=where)
        return plan

    def write_plan(self, round_no: int, plan: OversamplingPlan):
        """Write the plan of round ``round_no`` into the run folder (atomically); its path."""
        return self.run.write_plan(round_no, plan.to_dict())


def round_status(run_dir, round_no: int) -> str:
    """The status of round ``round_no`` of ``run_dir`` (see :meth:`RoundState.status`)."""
    return RoundState.read(run_dir).status(round_no)


# =========================================================================== plans

SELECTIONS = ("val-half", "holdout")


def mining_settings(run_dir, **overrides) -> dict:
    """Mining settings: every key of the run's resolved ``mining:`` section (its defaults
    are on :class:`~augmine.runs.config.MiningConfig`), ``overrides`` (not None) winning."""
    run = RunDir.of(run_dir)
    mining = run.config.mining if run.config_path.is_file() else MiningConfig()
    return {**mining.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}


def load_run_index(run_dir):
    """The run's dataset (``data:`` in its config) as a DatasetIndex; with ``mining.holdout``
    its held-out slice of train is the ``holdout`` split (never trained on)."""
    from augmine.data.dataset import load_index

    run = RunDir.of(run_dir)
    return apply_holdout(load_index(run.recorded_data()), run.config.mining.holdout,
                         run.config.seed)


def selection_method(run_dir, selection: str | None = None) -> str:
    """Where weak classes are chosen: ``val-half`` (a seeded, stratified half of val; the
    other half measures the round) or ``holdout`` (the held-out slice of train, set by
    ``mining.holdout`` before training; all of val measures). Default: holdout when the
    run has one, else val-half."""
    run = RunDir.of(run_dir)
    held = run.config.mining.holdout
    selection = selection or ("holdout" if held else "val-half")
    if selection not in SELECTIONS:
        raise AugmineError(f"selection {selection!r}: choose one of {', '.join(SELECTIONS)}")
    if selection == "holdout" and not held:
        raise AugmineError(f"{run.config_path}: selection 'holdout' needs `mining: {{holdout: "
                           "0.1}}` in the training config before training; use val-half")
    return selection


def selection_report(state: RoundState, index, report: dict, selection: str) -> dict:
    """Per-class F1 (with support) on the selection images, for choosing weak classes.

    ``val-half``: ``report``'s saved val predictions on the selection half; ``holdout``:
    the run's last checkpoint on the held-out slice of train. Returns a report-like dict
    ``{stage, selection, images, per_class: [{class_id, name, f1, support}], confusion}``
    (``confusion``: (C, C) counts on the selection images, row = true class, as lists)."""
    run = state.run
    if selection == "val-half":
        y = np.asarray(index.val.labels, np.int64)
        probs = state.probs(report["stage"], index)
        sel, _ = selection_split(index.val.labels, run.config.seed)
        y, pred = y[sel], probs[sel].argmax(axis=1)
    else:
        size, batch_size = evaluation_settings(run.config)
        y, probs = predict_checkpoint(run.checkpoint("last"), index, size, batch_size,
                                      split="holdout")
        pred = probs.argmax(axis=1)
    f1 = f1_scores(y, pred, index.num_classes)
    support = np.bincount(y, minlength=index.num_classes)
    return {"stage": report["stage"], "selection": selection, "images": int(len(y)),
            "per_class": [{"class_id": cid, "name": name, "f1": float(f1[i]),
                           "support": int(support[i])}
                          for i, (cid, name) in enumerate(zip(index.class_ids, index.class_names))],
            "confusion": confusion_matrix(y, pred, index.num_classes).tolist()}


def plan_from_report(report: dict, **settings) -> OversamplingPlan:
    """An OversamplingPlan from a stage report's per-class F1 and mining ``settings``
    (policy, k, threshold, z, factor, cap, scheme, recipe)."""
    keys = ("policy", "k", "threshold", "z", "factor", "cap", "scheme", "recipe")
    kw = {k: settings.get(k) for k in keys if settings.get(k) is not None}
    if "factor" in kw:
        kw["factor"] = float(kw["factor"])
    return make_plan(f1_vector(report), [c["class_id"] for c in report["per_class"]],
                     [c["name"] for c in report["per_class"]], source=report["stage"], **kw)


def selected_plan(state: RoundState, index, report: dict, selection: str,
                  settings: dict) -> OversamplingPlan:
    """The plan made from the selection images' F1 (see :func:`selection_report`); without
    ``k`` / ``factor`` in ``settings`` they fit the class count (a tenth of the classes, at
    most 10 more points of an epoch for them: :func:`~augmine.analysis.plans.default_k`,
    :func:`~augmine.analysis.plans.bounded_factor`); its ``policy`` records the selection, the chosen classes' selection support and their
    confusion partners on the selection images (``settings["partners"]`` each;
    :func:`~augmine.analysis.plans.with_partners`; the ``pairs`` mode oversamples them too)."""
    sel = selection_report(state, index, report, selection)
    settings = dict(settings)
    if settings.get("k") is None:
        settings["k"] = default_k(index.num_classes)
    if settings.get("factor") is None:
        weak = plan_from_report(sel, **{**settings, "factor": 1.0}).weak
        settings["factor"] = bounded_factor(index.class_counts("train"), weak)
    plan = plan_from_report(sel, **settings).aligned_to(index.class_ids, index.class_names)
    plan.policy.update({"selection": selection, "selection_images": sel["images"],
                        "support": {sel["per_class"][i]["name"]: sel["per_class"][i]["support"]
                                    for i in plan.weak}})
    return with_partners(plan, np.asarray(sel["confusion"]), settings["partners"])


def plan_round(run_dir, round_no: int | None = None, force: bool = False, index=None,
               **settings) -> tuple[int, OversamplingPlan, dict]:
    """Make and write the plan of the next round (or ``round_no``) from the latest report.

    ``run_dir``: a path, RunDir or :class:`RoundState`; ``index``: the run's dataset
    (default :func:`load_run_index`). ``settings`` override the config's ``mining:``
    section. The plan of an interrupted round is in use and is replaced only with ``force``
    (the round must then be redone). A plan that chooses every class with one factor (and
    no recipe) favours nothing and is refused. Returns ``(round_no, plan, source_report)``.
    """
    state = RoundState.of(run_dir)
    run = state.run
    report = state.latest_report
    nxt = state.next
    round_no = nxt if round_no is None else int(round_no)
    if round_no in state.done:
        raise AugmineError(f"round {round_no} of {run} is already done; plan round {nxt} "
                           "instead (omit --round)")
    if not force and state.status(round_no) == "interrupted":
        raise AugmineError(
            f"round {round_no} of {run} was interrupted and its plan "
            f"{run.plan_path(round_no)} is in use; resume the round with `augmine mine "
            f"round {run}`, or replace its plan with `augmine mine plan {run} --force` "
            "(plus your plan options) and then restart the round with "
            f"`augmine mine round {run} --redo`")
    opts = mining_settings(run, **settings)
    index = load_run_index(run) if index is None else index
    plan = selected_plan(state, index, report, selection_method(run, opts.get("selection")),
                         opts)
    n = plan.num_classes
    if len(plan.weak) == n and np.allclose(plan.factors, plan.factors[0]) and not plan.recipe:
        raise AugmineError(
            f"the plan chooses all {n} classes of {run} with one factor "
            f"({float(plan.factors[0]):g}): a plan choosing every class favours nothing (a "
            f"round would train what its control trains); choose fewer, e.g. `augmine mine "
            f"plan {run} --k {max(1, n // 5)}`")
    state.write_plan(round_no, plan)
    return round_no, plan, report
