"""Where a run's mining rounds stand: :class:`RoundState`, read once per command.

:meth:`RoundState.read` checks the run folder once and parses every complete stage report
(``report.json``) once; the runner, ``mine plan``/``round``/``compare``/``suspects`` and the
demo ask it for the round numbers, a round's status, the report a round starts from, the
latest report and the round plans. The run folder's layout stays with
:class:`~augmine.runs.rundir.RunDir` (``state.run``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from augmine.analysis.plans import OversamplingPlan
from augmine.analysis.reports import list_stage_reports, load_predictions, stage_sort_key
from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir

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
