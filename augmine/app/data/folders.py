"""The folders the app opens: the choices it offers, the dataset a run recorded and whether
it holds the run's classes."""

from __future__ import annotations

from pathlib import Path

from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir


def run_data_root(run_dir) -> str | None:
    """The dataset folder a run recorded (``data:`` in its config), or None.

    ``run_dir``: a path or :class:`~augmine.runs.rundir.RunDir`."""
    return RunDir.of(run_dir).data


def run_class_mismatch(run_dir, index) -> str | None:
    """One sentence when ``index`` (a DatasetIndex) does not hold the classes (ids, in
    order) the run recorded when it trained, naming the first differing class; None when
    they match or the run recorded none."""
    run = RunDir.of(run_dir)
    try:
        state = run.read_state() if run.has_state() else None
    except AugmineError:
        return None
    if state is None or not state.class_ids:
        return None
    diff = index.class_mismatch(state.class_ids, state.class_names or None)
    if diff is None:
        return None
    return (f"{index.root} does not hold the classes {run.path.name} was trained on: {diff}; "
            "its reports and these images do not belong together: choose the run's own "
            "dataset")


def folder_choices(run_dir: str | None, data: str | None) -> tuple[list[str], list[str]]:
    """The only folders the app opens: (dataset choices, run folder choices).

    ``run_dir``, ``data``: what ``augmine app [RUN_DIR] --data PATH`` was given (None when
    not). Datasets: ``data``, the run's recorded dataset, then ``""`` (the generated
    default); runs: ``run_dir``, then ``""`` (none). Nobody who reaches the port can open
    any other folder: the sidebar offers these as choices, never as free text.
    """
    def norm(p: str) -> str:
        return str(Path(p).expanduser().resolve())

    run = norm(run_dir) if run_dir else ""
    datas = [norm(data)] if data else []
    if run:
        recorded = run_data_root(run)
        if recorded and Path(recorded).is_dir():
            datas.append(norm(recorded))
    return list(dict.fromkeys(datas)) + [""], ([run] if run else []) + [""]
