"""augmine inside your own ``model.fit``: per-class reports as a Keras callback, and the
oversampled training feed of a plan file.

:class:`PerClassReport` evaluates the model on the validation split after every ``every``
epochs and writes the same report files ``augmine train`` writes after a phase
(``reports/epoch-N/``: per-class precision/recall/F1, confusion matrix, predictions; see
:mod:`augmine.analysis.reports`) into a run folder, with the small ``config.yaml`` and ``state.json``
that ``augmine mine analyze RUN``, ``augmine mine plan RUN``, ``augmine mine history RUN``
and ``augmine app RUN`` read. :func:`oversampled_feed` turns the plan ``augmine mine plan``
wrote into the training feed of your next ``fit``.

The model must take augmine's uint8 images ``(B, S, S, 3)`` in [0, 255] and scale them
itself (e.g. a ``keras.layers.Rescaling(1/255)`` first layer).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from augmine.core.errors import AugmineError
from augmine.runs.rundir import RunDir
from augmine.runs.state import RunState
from augmine.core.runtime import import_keras

STAGE_PREFIX = "epoch"


def _base_callback():
    return import_keras().callbacks.Callback


class PerClassReport(_base_callback()):
    """A Keras callback writing augmine's per-class report of the val split into a run folder.

    ``run_dir``: the folder (created; an earlier folder of this callback is continued, its
    epoch count carried on); ``index``: the :class:`~augmine.data.dataset.DatasetIndex` the model
    trains on; ``size``: the side (px) val images are resized to; ``batch_size``: of the
    evaluation; ``every``: report after every ``every`` epochs (and after the last).
    After each epoch the history row (``loss``, ``accuracy``, ``val_*`` from Keras' logs)
    goes to ``history.csv``; after a reported epoch N the report goes to
    ``reports/epoch-N/`` (N counts every epoch this folder has seen, over several fits).
    ``last_report`` holds the latest report dict.
    """

    def __init__(self, run_dir, index, size: int, batch_size: int = 256, every: int = 1):
        super().__init__()
        if isinstance(every, bool) or int(every) != every or every < 1:
            raise AugmineError(f"PerClassReport: every={every!r}; use a whole number >= 1")
        self.run = RunDir.of(run_dir)
        self.index, self.size, self.batch_size = index, int(size), int(batch_size)
        self.every = int(every)
        self.last_report: dict | None = None
        self._state: RunState | None = None

    # ------------------------------------------------------------------ the run folder

    def _start(self) -> RunState:
        """The folder's state, its config and state written first when it has none."""
        from augmine.runs.config import load_config

        run, index = self.run, self.index
        epochs = max(1, int((self.params or {}).get("epochs") or 1))
        if not run.config_path.is_file():
            cfg = load_config({
                "name": run.path.name, "data": str(Path(index.root).resolve()),
                "description": "reports of a user's own model.fit "
                               "(augmine.train.callbacks.PerClassReport)",
                "batch_size": self.batch_size,
                "phases": [{"size": self.size, "epochs": epochs, "recipe": "none"}]},
                check_recipes=False)
            run.write_config(cfg)
        if run.has_state():
            state = run.read_state()
            index.check_classes(state.class_ids or index.class_ids, state.class_names or None,
                                run, "give PerClassReport a new run folder for this dataset")
        else:
            state = RunState(source="PerClassReport", planned_epochs=epochs,
                             num_classes=index.num_classes, class_ids=list(index.class_ids),
                             class_names=list(index.class_names))
            run.write_state(state)
        return state

    def on_train_begin(self, logs=None):
        self._state = self._start()
        self._fit_epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        state = self._state if self._state is not None else self._start()
        logs = dict(logs or {})
        state.epochs_done += 1
        self._fit_epochs = getattr(self, "_fit_epochs", 0) + 1
        done = state.epochs_done
        stage = f"{STAGE_PREFIX}-{done}"
        row = {"stage": stage, "phase": "", "size": self.size, "epoch": done}
        row.update({k: float(logs[k]) if k in logs else None
                    for k in ("loss", "accuracy", "val_loss", "val_accuracy")})
        self.run.append_history(row)
        last = epoch + 1 >= int((self.params or {}).get("epochs") or 0)
        if self._fit_epochs % self.every == 0 or last:
            self.last_report = self._report(stage, done)
            state.reports.append(stage)
            state.stage = stage
            acc = self.last_report["accuracy"]
            if state.best_val_accuracy is None or acc > state.best_val_accuracy:
                state.best_val_accuracy, state.best_epoch = acc, done
        state.updated = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.run.write_state(state)

    def on_train_end(self, logs=None):
        if self._state is not None:
            self._state.status = "done"
            self.run.write_state(self._state)

    def _report(self, stage: str, done: int) -> dict:
        from augmine.train.evaluation import evaluate_model
        from augmine.analysis.reports import write_stage_report

        y_true, probs = evaluate_model(self.model, self.index, self.size, self.batch_size)
        meta = {"kind": STAGE_PREFIX, "size": self.size, "epochs_done": done}
        return write_stage_report(self.run, stage, y_true, probs, list(self.index.class_ids),
                                  list(self.index.class_names), meta=meta,
                                  val_paths=self.index.val.paths)


def read_plan_file(plan_path, index):
    """The :class:`~augmine.analysis.plans.OversamplingPlan` in a plan JSON file (``augmine mine
    plan`` writes ``RUN/plans/round-N.json``), reordered to ``index``'s classes."""
    from augmine.analysis.plans import OversamplingPlan

    path = Path(plan_path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AugmineError(f"{path}: plan file not found; write one with `augmine mine plan "
                           "RUN`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AugmineError(f"{path}: not a readable plan ({exc}); remake it with `augmine "
                           "mine plan RUN --force`") from None
    plan = OversamplingPlan.from_dict(raw, where=str(path))
    return plan.aligned_to(index.class_ids, index.class_names, where=str(path))


def oversampled_feed(index, recipe, size: int, batch_size: int, plan_path,
                     seed: int | None = 0, **options):
    """The training feed of a plan file: :func:`augmine.feed.feeds.train_dataset` with the
    plan's per-class repeat factors (and its stronger recipe for the weak classes, if any).

    ``index``: DatasetIndex; ``recipe``: recipe path, built-in name or Recipe for every class;
    ``size``: px; ``plan_path``: the plan JSON; ``seed``: int for reproducible epochs or
    None; ``options``: more :func:`~augmine.feed.feeds.train_dataset` arguments (``workers``,
    ``cache``, ...). Yields ``(images uint8 (B, size, size, 3), labels int32 (B,))`` per
    batch; close it with :func:`augmine.feed.feeds.close_feed`.
    """
    from augmine.feed.feeds import train_dataset

    return train_dataset(index, recipe, size, batch_size, plan=read_plan_file(plan_path, index),
                         seed=seed, **options)
