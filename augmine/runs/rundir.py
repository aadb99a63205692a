"""One object that owns one run folder: :class:`RunDir`, the only module that knows its
layout (the ``affinity/`` files included).

Layout (every file written atomically, see :mod:`augmine.core.atomic`)::

    RUN/config.yaml                    the resolved training config (with ``data:``)
    RUN/state.json                     progress; written last after every epoch (commit point)
    RUN/state-damaged.json             a damaged state.json set aside by a rebuild (runs.starts)
    RUN/history.csv                    one row per epoch (HISTORY_COLUMNS)
    RUN/lr_schedule.png                the planned learning rate (drawn by ``augmine train``
                                       when its training is done)
    RUN/checkpoints/last.keras         weights + optimizer state after the latest epoch
    RUN/checkpoints/best.keras         best val accuracy over the run
    RUN/checkpoints/best-<S>px.keras   best val accuracy at image size S (one per phase size)
    RUN/checkpoints/round-N-start/     last/best/state as they were when round N started
    RUN/tensorboard/<stage>/           TensorBoard logs
    RUN/reports/<stage>/               a stage's report files (see :mod:`augmine.analysis.reports`)
    RUN/plans/round-N.json             the oversampling plan of mining round N
    RUN/branches/<group>/<name>/       a run folder trained beside the run from one start
                                       (a round's control, ``mine compare``'s modes)
    RUN/inspection/                    the dataset inspection (demo)
    RUN/affinity/<recipe>/             ``augmine recipe affinity``: affinity.json (full
                                       results), affinity.csv (table), affinity.png (heatmap)

Other modules ask a ``RunDir`` for paths and file contents and never build them. The Keras
checkpoint files are written, loaded and chosen by :mod:`augmine.runs.factories` (at the
paths :meth:`RunDir.checkpoint` gives); no Keras, TensorFlow or numpy is imported here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

from augmine.core import atomic
from augmine.core.errors import AugmineError
from augmine.runs.starts import RunStarts
from augmine.runs.state import load_state, RoundCopies, RunState, store_state


# =========================================================================== affinity_files
# The run folder's ``affinity/<recipe>/`` files (``augmine recipe affinity``): a part of
# :class:`augmine.runs.rundir.RunDir`, which owns the layout.

class AffinityFiles:
    """``affinity/<recipe>/affinity.{json,csv,png}`` of a :class:`~augmine.runs.rundir.RunDir`
    (mixed into it: uses its ``path``)."""

    @property
    def affinity_root(self) -> Path:
        return self.path / "affinity"

    def affinity_dir(self, recipe_stem: str) -> Path:
        """``affinity/<recipe_stem>/``: one recipe's affinity measurement on this run."""
        stem = str(recipe_stem)
        if not stem or stem in (".", "..") or "/" in stem or "\\" in stem:
            raise AugmineError(f"recipe name {stem!r} cannot name a folder; rename the recipe "
                               "file")
        return self.affinity_root / stem

    def affinity_path(self, recipe_stem: str, kind: str = "json") -> Path:
        """``affinity/<recipe_stem>/affinity.<kind>``: ``json`` (full results), ``csv``
        (table) or ``png`` (heatmap)."""
        if kind not in ("json", "csv", "png"):
            raise AugmineError(f"affinity file kind {kind!r}: choose json, csv or png")
        return self.affinity_dir(recipe_stem) / f"affinity.{kind}"

    def affinity_recipes(self) -> list[str]:
        """Recipe stems with a saved affinity result (``affinity.json``), sorted."""
        if not self.affinity_root.is_dir():
            return []
        return sorted(p.name for p in self.affinity_root.iterdir()
                      if (p / "affinity.json").is_file())

    def read_affinity(self, recipe_stem: str) -> dict | None:
        """The saved affinity result of ``recipe_stem``, or None when there is none."""
        return atomic.read_json(self.affinity_path(recipe_stem),
                                f"remake it with `augmine recipe affinity {recipe_stem} "
                                f"--run {self.path} --force`")

    def write_affinity(self, recipe_stem: str, result: dict, table_csv: str) -> Path:
        """Write ``affinity.csv`` then ``affinity.json`` (the commit point) atomically."""
        atomic.write_text(self.affinity_path(recipe_stem, "csv"), table_csv)
        return atomic.write_json(self.affinity_path(recipe_stem), result)


# =========================================================================== rundir

HISTORY_COLUMNS = ("stage", "phase", "size", "epoch", "lr", "loss", "accuracy",
                   "val_loss", "val_accuracy")
SUSPECT_COLUMNS = ("name", "path", "split", "scored", "self_confidence", "predicted_name",
                   "predicted_prob")
_SNAPSHOT = ("last", "best", "state")
# The files of a stage report, reports/<stage>/ (written by augmine.analysis.reports), and its
# plots, drawn from them when asked for (augmine.analysis.reports.draw_report_plots).
REPORT_FILES = ("report.json", "per_class.csv", "confusion.npy", "report.md", "predictions.npz")
REPORT_PLOTS = ("f1.png", "confusion.png")


class RunDir(RoundCopies, AffinityFiles, RunStarts):
    """A run folder. ``RunDir(path)`` creates nothing; writes create folders as needed."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().resolve()
        self._config = None

    @classmethod
    def of(cls, run: "RunDir | str | os.PathLike") -> "RunDir":
        """``run`` itself when it is a RunDir, else a RunDir on that path."""
        return run if isinstance(run, RunDir) else cls(run)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ----------------------------------------------------------------------- paths

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    @property
    def lr_schedule_path(self) -> Path:
        """``lr_schedule.png``: the planned learning rate over the whole run."""
        return self.path / "lr_schedule.png"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def inspection_dir(self) -> Path:
        return self.path / "inspection"

    @property
    def inspection_file(self) -> Path:
        """``inspection/inspection.json``: the dataset inspection's results (demo)."""
        return self.inspection_dir / "inspection.json"

    @property
    def reports_dir(self) -> Path:
        return self.path / "reports"

    def checkpoint(self, which: str = "last", size: int | None = None) -> Path:
        """Path of ``last.keras``, ``best.keras`` or (``which="best"``, ``size``) the best
        checkpoint at that image size. The file may not exist yet."""
        if which not in ("last", "best"):
            raise AugmineError(f"checkpoint {which!r}: choose best or last")
        if which == "best" and size is not None:
            return self.checkpoints_dir / f"best-{int(size)}px.keras"
        return self.checkpoints_dir / f"{which}.keras"

    def tensorboard_dir(self, stage: str) -> Path:
        return self.path / "tensorboard" / stage

    def report_dir(self, stage: str) -> Path:
        """``reports/<stage>/`` (a report's files live in it; see :mod:`augmine.analysis.reports`)."""
        return self.reports_dir / stage

    def report_file(self, stage: str, name: str) -> Path:
        """``reports/<stage>/<name>``: one of a stage report's ``REPORT_FILES`` or
        ``REPORT_PLOTS``."""
        if name not in REPORT_FILES + REPORT_PLOTS:
            raise ValueError(f"{name!r} is not a report file; one of "
                             f"{', '.join(REPORT_FILES + REPORT_PLOTS)}")
        return self.report_dir(stage) / name

    def suspects_path(self, stage: str) -> Path:
        """``reports/<stage>/suspects.csv`` (written by ``augmine mine suspects``)."""
        return self.report_dir(stage) / "suspects.csv"

    def plan_path(self, round_no: int) -> Path:
        return self.path / "plans" / f"round-{int(round_no)}.json"

    def gentle_recipe_path(self, stage: str) -> Path:
        """``plans/<stage>-gentle.yaml``: the recipe a gentle arm of ``stage`` (``round-N``
        or a ``compare-step-S`` group) trains under, written before it trains."""
        return self.path / "plans" / f"{stage}-gentle.yaml"

    def gentle_recipes(self) -> dict[str, Path]:
        """``{stage: path}`` of every gentle recipe written (:meth:`gentle_recipe_path`)."""
        folder = self.path / "plans"
        if not folder.is_dir():
            return {}
        return {p.name[:-len("-gentle.yaml")]: p for p in sorted(folder.glob("*-gentle.yaml"))}

    # ----------------------------------------------------------------------- what it is

    def exists(self) -> bool:
        return self.path.is_dir()

    def has_state(self) -> bool:
        return self.state_path.is_file()

    def has_checkpoint(self, which: str = "last", size: int | None = None) -> bool:
        return self.checkpoint(which, size).is_file()

    def check(self) -> "RunDir":
        """This RunDir; a one-line error when the folder is not a run folder."""
        if not self.path.is_dir():
            raise AugmineError(f"{self.path} is not a folder; give a run folder made by "
                               "`augmine train`")
        if not self.config_path.is_file() and not self.reports_dir.is_dir():
            raise AugmineError(f"{self.path} is not a run folder (no config.yaml, no "
                               "reports/); give the folder `augmine train` wrote")
        return self

    def check_writable(self, command: str = "this command") -> "RunDir":
        """This RunDir; a one-line error naming the first folder of the run that cannot be
        written (or, when the run does not exist yet, the folder it would be made in) and
        the fix. ``command`` names what wants to write (e.g. ``"mine round"``)."""
        if not self.path.is_dir():
            parent = next(p for p in self.path.parents if p.exists())
            if not os.access(parent, os.W_OK | os.X_OK):
                raise AugmineError(f"{parent} is not writable ({_why_not_writable(parent)}), so "
                                   f"`augmine {command}` cannot make {self.path} there; "
                                   "choose a run folder in a writable place")
            return self
        folders = [self.path] + sorted(p for p in self.path.rglob("*") if p.is_dir())
        for folder in folders:
            if os.access(folder, os.W_OK | os.X_OK):
                continue
            why = _why_not_writable(folder)
            fix = (f"copy the run to a writable place (cp -r {self.path} COPY) and run "
                   f"`augmine {command}` on COPY" if why == "read-only file system" else
                   f"make it writable (chmod -R u+w {self.path}) or run as its owner")
            raise AugmineError(f"{folder} is not writable ({why}); `augmine {command}` writes "
                               f"in the run folder {self.path}: {fix}")
        return self

    def remove_partial_writes(self) -> int:
        """Delete the temporary files of writes a killed run left (the files they were
        replacing are whole, see :mod:`augmine.core.atomic`); call before resuming. Returns
        how many."""
        return len(atomic.remove_leftovers(self.path)) if self.path.is_dir() else 0

    def stages(self) -> list[str]:
        """Names of the stage folders under ``reports/`` (unsorted, complete or not)."""
        if not self.reports_dir.is_dir():
            return []
        return [p.name for p in self.reports_dir.iterdir() if p.is_dir()]

    def remove_report(self, stage: str) -> None:
        """Delete ``reports/<stage>/`` (a stage about to be trained again)."""
        shutil.rmtree(self.report_dir(stage), ignore_errors=True)

    # ----------------------------------------------------------------------- config

    @property
    def config(self):
        """The run's training config (``config.yaml``) as a validated
        :class:`~augmine.runs.config.TrainConfig`; recipes are not re-checked."""
        if self._config is None:
            from augmine.runs.config import load_config

            if not self.config_path.is_file():
                raise AugmineError(f"{self.config_path} is missing; the run folder needs the "
                                   "config `augmine train` writes there")
            self._config = load_config(self.config_path, check_recipes=False)
        return self._config

    def recorded_data(self) -> str:
        """The dataset folder of the run's validated config (``data:``); a one-line error
        when the config records none."""
        data = self.config.data
        if not data:
            raise AugmineError(f"{self.config_path} records no `data:` folder; the trainer "
                               "writes it there")
        return str(data)

    @property
    def data(self) -> str | None:
        """The dataset folder the run recorded (``data:`` in config.yaml), or None.

        Read without validating the rest of the config, so a partial config still names it.
        """
        import yaml

        try:
            raw = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None
        data = raw.get("data") if isinstance(raw, dict) else None
        return str(data) if data else None

    def write_config(self, cfg) -> Path:
        """Write ``cfg`` (a TrainConfig) as ``config.yaml``."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._config = cfg
        return atomic.write_text(self.config_path, cfg.to_yaml())

    # ----------------------------------------------------------------------- state

    def read_state(self) -> RunState:
        """``state.json`` as a :class:`~augmine.runs.state.RunState` (your own copy: change
        it, then :meth:`write_state`); parsed once while the file is unchanged. One-line
        errors when the folder holds no training run, when the file is damaged or a field
        malformed (the fix fits the run, a round's snapshot or a rebuild), or when a newer
        augmine wrote it."""
        if not self.state_path.is_file():
            raise AugmineError(f"{self.path}: no state.json, so this is not a training run "
                               "folder; start one with `augmine train CONFIG --run-dir DIR`")
        return load_state(self.state_path, self.state_fix)

    def check_classes(self, index, fix: str, state: RunState | None = None) -> None:
        """One-line error unless ``index`` (a DatasetIndex) holds the classes this run
        recorded in its state (``state``, else read; class ids in order). Runs older than
        that record are checked by class count only, where the model is loaded."""
        if state is None:
            state = self.read_state() if self.has_state() else RunState()
        if state.class_ids:
            index.check_classes(state.class_ids, state.class_names or None, self, fix)

    def write_state(self, state: "RunState | dict") -> Path:
        """Write ``state.json`` (atomically; the only writer), stamped with the state
        version."""
        return store_state(self.state_path, state)

    # ----------------------------------------------------------------------- history

    def read_history(self) -> list[dict]:
        """Rows of ``history.csv`` as dicts (strings as written); [] when there is none."""
        if not self.history_path.is_file():
            return []
        with open(self.history_path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def _write_history(self, rows: list[dict]) -> None:
        _write_csv(self.history_path, HISTORY_COLUMNS, rows)

    def append_history(self, row: dict) -> None:
        """Add one epoch's row at the end of ``history.csv`` (the header is written with the
        first row; values formatted: floats to 6 significant digits). The file is not
        rewritten: a row costs one small write whatever the run's length."""
        def fmt(value):
            if value is None:
                return ""
            return f"{value:.6g}" if isinstance(value, float) else str(value)

        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.history_path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=HISTORY_COLUMNS, extrasaction="ignore",
                                    lineterminator="\n")
            if fh.tell() == 0:
                writer.writeheader()
            writer.writerow({k: fmt(v) for k, v in row.items()})

    def truncate_history(self, epochs_done: int) -> None:
        """Drop rows written after the last committed ``state.json`` (epoch > epochs_done),
        and any row an interrupted append left short; rewritten atomically when it drops."""
        rows = self.read_history()
        keep = [r for r in rows if r.get("epoch") and None not in r.values()
                and r["epoch"].isdigit() and int(r["epoch"]) <= int(epochs_done)]
        if len(keep) != len(rows):
            self._write_history(keep)

    # ----------------------------------------------------------------------- checkpoints

    def promote_best(self, size: int | None = None) -> None:
        """Make ``best.keras`` or, with ``size``, ``best-<size>px.keras`` the file
        ``last.keras`` is now: a hard link (a copy where links fail). ``last.keras`` is only
        ever replaced by rename, so the best keeps these bytes after later saves."""
        atomic.link_file(self.checkpoint("last"), self.checkpoint("best", size), sync=False)

    # ----------------------------------------------------------------------- suspects

    def write_suspects(self, stage: str, rows: list[dict]) -> Path:
        """Write ``rows`` (their SUSPECT_COLUMNS, values as given) as the stage's
        ``suspects.csv``, atomically; its path."""
        return _write_csv(self.suspects_path(stage), SUSPECT_COLUMNS, rows)

    # ----------------------------------------------------------------------- plans

    def write_plan(self, round_no: int, plan: dict) -> Path:
        """Write ``plans/round-N.json`` (a plan's dict) atomically: the one copy of round N's
        plan (its start record and report refer to it, :meth:`plan_ref`)."""
        return atomic.write_json(self.plan_path(round_no), plan)

    def read_plan(self, round_no: int) -> dict:
        """The dict in ``plans/round-N.json``; one-line errors when missing or broken."""
        return self._plan_file(self.plan_path(round_no), f"write it with `augmine mine plan "
                                                          f"{self.path}`")

    def plan_ref(self, round_no: int) -> str:
        """``"plans/round-N.json"``: how ``round.json`` and a round's ``report.json`` refer to
        round N's plan (relative to the run folder)."""
        return self.plan_path(round_no).relative_to(self.path).as_posix()

    def referred_plan(self, ref: str, referrer: Path) -> dict:
        """The plan dict ``ref`` (a :meth:`plan_ref`, written in the file ``referrer``) names;
        one-line errors when it is not a plan file of this run, missing or broken."""
        path = self.path / str(ref)
        if not (isinstance(ref, str) and path.parent == self.plan_path(1).parent and
                path.name.startswith("round-")):
            raise AugmineError(f"{referrer}: 'plan' is {ref!r}, not a plan of this run "
                               "(plans/round-N.json); rerun the stage to rewrite it")
        return self._plan_file(path, f"{referrer} refers to it; put the run's plans/ back "
                                     "from a copy of the run")

    def stored_plan(self, round_no: int) -> dict | None:
        """Round N's plan file as a dict, or None when it is missing or unreadable (for
        writers deciding whether to refer to it; readers use :meth:`referred_plan`)."""
        try:
            return self._plan_file(self.plan_path(round_no), "")
        except (OSError, UnicodeDecodeError, AugmineError):
            return None

    def _plan_file(self, path: Path, fix: str) -> dict:
        if not path.is_file():
            raise AugmineError(f"{path} is missing; {fix}")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise AugmineError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); fix it "
                               f"or remake it with `augmine mine plan {self.path}`") from None


def _why_not_writable(folder: Path) -> str:
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except (OSError, AttributeError):
        pass
    return "permission denied"


def _write_csv(path: Path, columns, rows: list[dict]) -> Path:
    """Write ``rows``' ``columns`` (a header, then one line each) to ``path`` atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic.write_text(path, buf.getvalue())
