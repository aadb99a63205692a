"""Phased training driven by a training config: progressive resizing, cyclic LR, resume.

One model trains through every phase of a config (its input is ``(None, None, 3)``), with
one optimizer whose ``iterations`` count keeps the cyclic schedule going across phases,
resumes and mining rounds. The run folder is a :class:`~augmine.runs.rundir.RunDir`; each stage
is one :func:`~augmine.train.fit.fit_stage` call; after each phase a report is written
(:mod:`augmine.analysis.reports`).

Resume: ``state.json`` is the commit point of every epoch (see :mod:`augmine.train.fit`).
``resume=True`` loads ``last.keras``, drops history rows newer than ``state.json`` and
continues at the recorded phase and epoch (``initial_epoch``), schedule step and pipeline
epoch (``first_epoch``). This is Keras' ``BackupAndRestore`` idea written for a multi-phase
run: ``BackupAndRestore`` only knows one ``fit`` call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augmine.runs.factories import create_callbacks, evaluation_settings
from augmine.runs.config import TrainConfig, load_config, resume_config
from augmine.data.dataset import load_checked_index, skipped_paths
from augmine.core.errors import AugmineError
from augmine.train.evaluation import evaluate_model
from augmine.analysis.plans import apply_holdout
from augmine.model.sources import check_phase_sizes, rescaled
from augmine.analysis.reports import write_stage_report
from augmine.runs.rundir import RunDir
from augmine.runs.starts import extended_state, new_state
from augmine.runs.state import RoundProgress, RunState
from augmine.core.runtime import import_keras
from augmine.train.fit import (build_model, distribution, dtype_policy, epoch_validation,
                               fit_stage, precision_policy, process_feed, process_run,
                               process_shard, restore_model, run_progress, show_bars,
                               stage_callbacks, whole_predictions)

log = logging.getLogger("augmine")

ROUND_SEED_OFFSET = 1000


@dataclass
class RunResult:
    """What :func:`train_run` returns: the run folder, its final state and history;
    ``steps``: :func:`phase_steps` when it trained (None when the run was done already)."""

    run: RunDir
    state: RunState
    history: list[dict]
    model: Any = None
    steps: list | None = None

    @property
    def run_dir(self) -> Path:
        return self.run.path

    @property
    def last_checkpoint(self) -> Path:
        return self.run.checkpoint("last")

    @property
    def best_checkpoint(self) -> Path:
        return self.run.checkpoint("best")


def _phase_report(run: RunDir, model, index, cfg: TrainConfig, phase_no: int, state: RunState,
                  predictions=None):
    """The phase's report from ``predictions`` (``(y_true, probs)`` of the phase's last
    epoch's validation) or, without them, one prediction pass."""
    phase = cfg.phases[phase_no - 1]
    if predictions is None:
        _, batch_size = evaluation_settings(cfg, phase.size)
        with whole_predictions(cfg.strategy):
            predictions = evaluate_model(model, index, phase.size, batch_size)
    y_true, probs = predictions
    meta = {"kind": "phase", "phase": phase_no, "size": phase.size, "epochs": phase.epochs,
            "epochs_done": state.epochs_done, "step": state.step,
            "recipe": phase.recipe}
    return write_stage_report(run, f"phase-{phase_no}", y_true, probs,
                              list(index.class_ids), list(index.class_names), meta=meta,
                              val_paths=index.val.paths)


def phase_steps(cfg: TrainConfig, index) -> list[tuple[int, int]]:
    """``(steps_per_epoch, epochs)`` of every phase of ``cfg`` on ``index`` (a
    DatasetIndex): ``ceil(epoch_length / batch_size)`` batches per epoch."""
    from augmine.feed.sampling import epoch_length
    from augmine.feed.sampling import steps_per_epoch

    per_epoch = steps_per_epoch(epoch_length(index), cfg.batch_size,
                                process_shard(cfg.strategy))
    return [(per_epoch, phase.epochs) for phase in cfg.phases]


def plot_run_schedule(result: RunResult) -> Path | None:
    """The trained run's learning rate at every step (phase boundaries dashed) as
    ``lr_schedule.png``, drawn where missing or older than its ``config.yaml``: ``augmine
    train`` calls it after training, off the epochs' path. Its path; None when ``result``
    trained nothing."""
    from augmine.model.schedule_plots import lr_values, plot_lr_schedule
    from augmine.runs.factories import create_schedule

    if result.steps is None:
        return None
    run, cfg, png = result.run, result.run.config, result.run.lr_schedule_path
    if png.is_file() and png.stat().st_mtime_ns >= run.config_path.stat().st_mtime_ns:
        return png
    schedule = create_schedule(cfg.schedule, result.steps, where=cfg.path or "config")
    ends = [spe * epochs for spe, epochs in result.steps]
    bounds = [sum(ends[:k]) for k in range(1, len(ends))]
    return plot_lr_schedule(lr_values(schedule, sum(ends)), bounds, png,
                            title=f"{cfg.name}: learning rate over {sum(ends)} steps "
                                  f"({cfg.schedule.mode})")


def _seed_keras(seed: int) -> None:
    import_keras().utils.set_random_seed(int(seed))


def _feeds(index, cfg: TrainConfig, recipe, size: int, seed: int, first_epoch: int,
           plan=None, options: dict | None = None):
    """``(train feed, val feed)``; ``options``: more train_dataset arguments (a phase's
    :meth:`~augmine.runs.config.Phase.feed_options`)."""
    from augmine.feed.feeds import eval_dataset, train_dataset

    _, eval_bs = evaluation_settings(cfg, size)
    shard = process_shard(cfg.strategy)
    train_feed = train_dataset(index, recipe, size, cfg.batch_size, plan=plan, seed=seed,
                               workers=cfg.workers, first_epoch=first_epoch, shard=shard,
                               **(options or {}))
    reg = cfg.regularization
    if reg.mixup or reg.cutmix:
        from augmine.train.regularization import batch_mixer, mix_feed

        train_feed = mix_feed(train_feed, batch_mixer(index.num_classes, reg.mixup,
                                                      reg.cutmix, seed=seed + first_epoch))
    return process_feed(train_feed, shard), eval_dataset(index, size, eval_bs, keep=True)


def _phase_recipe(cfg: TrainConfig, phase):
    """The phase's :class:`~augmine.augment.recipes.Recipe` (the one ``cfg`` validated, see
    :meth:`~augmine.runs.config.TrainConfig.recipe`), scaled to its ``strength`` when set."""
    recipe = cfg.recipe(phase.recipe)
    if phase.strength is None or phase.strength == 1:
        return recipe
    from augmine.augment.compose import scale_recipe

    return scale_recipe(recipe, phase.strength)


def _fit_and_close(model, feeds, epochs: int, initial_epoch: int, callbacks, progress,
                   class_weight=None, *, index, size: int, cfg: TrainConfig):
    """Fit one stage on ``feeds`` (train, val), validated by :func:`epoch_validation`;
    returns the last epoch's ``(y_true, probs)`` on val when they are still the model's
    (None when no epoch ran or a callback changed the weights after it)."""
    from augmine.feed.feeds import close_feed

    train_feed, val_feed = feeds
    _, eval_bs = evaluation_settings(cfg, size)
    validation = epoch_validation(val_feed, index, size, eval_bs, cfg.strategy)
    try:
        fit_stage(model, train_feed, None, epochs, initial_epoch,
                  [validation, *callbacks], progress, class_weight=class_weight)
    finally:
        close_feed(train_feed)
        close_feed(val_feed)
    return validation.final_predictions(model)


def _epochs(first: int, last: int) -> str:
    """``epoch 3`` or ``epochs 3..5``."""
    return f"epoch {first}" if first == last else f"epochs {first}..{last}"


def phase_label(phase_no: int, phase) -> str:
    """``phase 2 (32 px, tiny-imagenet-14@0.5)``: what every line of a phase starts with."""
    strength = "" if phase.strength in (None, 1) else f"@{phase.strength:g}"
    return f"phase {phase_no} ({phase.size} px, {Path(phase.recipe).stem}{strength})"


def train_run(config, data_root=None, run_dir="runs/run", resume: bool = False,
              progress: bool = True, extra_callbacks=(), skip_bad: bool = False,
              echo=None, epochs: int | None = None, reuse: bool = False) -> RunResult:
    """Train every phase of a config into ``run_dir``; with ``resume`` continue a killed run.

    ``config``: YAML path, dict or :class:`TrainConfig`; on resume None (the run's own
    ``config.yaml``) or a config that must match it (see
    :func:`~augmine.runs.config.resume_config`). ``data_root``: dataset folder (on resume
    the recorded one; another only where that is gone). ``epochs``: the last phase's epochs
    (``augmine train --epochs``; on resume the one change allowed, applied and printed).
    ``run_dir``: a path or :class:`RunDir`; a new run never starts over a run's work (see
    :meth:`~augmine.runs.starts.RunStarts.check_new_run`). ``extra_callbacks``: Keras
    callbacks added to every phase's fit. ``skip_bad``: leave out images that do not decode
    (each logged) instead of failing; every image is checked before the first epoch (see
    :func:`run_index`). Everything (config, dataset, class overrides, schedule, model) is
    checked before the first write. Writes the run folder and a ``phase-N`` report after
    each phase. ``echo`` gets a header before each phase trains (default: the log);
    every epoch line names its phase, size and recipe and carries the whole run's
    done/total epochs and ETA. ``reuse``: a new run trains in a model kept from an earlier
    run of this process with the same model config (:func:`~augmine.train.fit.build_model`;
    shared: use the result's model before the next run). Returns a :class:`RunResult`.
    """
    say = echo or log.info
    run = RunDir.of(run_dir)
    changes: list[str] = []
    if resume:
        run.check_resumable()
        state = run.read_state()
        cfg, changes = resume_config(run.config, state, config, epochs, run)
        data_root, moved = run.resume_data(data_root)
        changes += moved
        planned = state.planned_epochs or cfg.total_epochs
        if state.status == "done" and cfg.total_epochs <= planned:
            say(f"{run}: already done ({state.epochs_done} of {planned} "
                f"epochs); to train it further raise the last phase's epochs: `augmine train "
                f"--run-dir {run} --resume --epochs N`")
            return RunResult(run, state, run.read_history())
    else:
        cfg = load_config(config).with_last_epochs(epochs)   # a bad config fails first
        if data_root is None:
            raise AugmineError("no dataset given; pass --data PATH")
        run.check_new_run()
        state = None
    run = process_run(run, cfg.strategy, cfg.batch_size)   # multi-worker: process 0 writes
    data_root = Path(data_root).expanduser().resolve()
    index, skips = run_index(data_root, state, skip_bad, progress)
    if state is not None:
        run.check_classes(index, f"resume it on its own dataset: `augmine train --run-dir "
                                 f"{run} --resume` without --data", state)
    cfg.check_recipe_classes(index)
    index = apply_holdout(index, cfg.mining.holdout, cfg.seed)  # never trained on
    steps = phase_steps(cfg, index)
    if state is None:
        from augmine.runs.factories import create_schedule

        create_schedule(cfg.schedule, steps, where=cfg.path or "config")  # fail before writing
    else:
        run.remove_partial_writes()
    callbacks = list(extra_callbacks) + create_callbacks(cfg)

    with dtype_policy(precision_policy(cfg.mixed_precision)), distribution(cfg.strategy):
        model = _start_model(run, cfg, index, state, steps, reuse)
        if state is None:                  # the model fits the config: now write the run
            cfg = cfg.model_copy(update={"data": str(data_root), "model": recorded_model(
                cfg.model, model)})
            run.write_config(cfg)
            state = new_state(cfg, index)
        elif changes:                      # a resume's allowed changes, applied and printed
            cfg = cfg.model_copy(update={"data": str(data_root)})
            run.write_config(cfg)
            extended_state(state, cfg)
            for line in changes:
                say(f"resume: {line}")
        state.skip_bad, state.skipped = skips["skip_bad"], skips["skipped"]
        run.write_state(state)
        run_bar = run_progress(cfg.total_epochs, state.epochs_done)
        for phase_no, phase in enumerate(cfg.phases, 1):
            if phase_no < (state.phase or 1):
                continue
            done = (state.phase_epochs_done or 0) if phase_no == state.phase else 0
            stage, predictions = f"phase-{phase_no}", None
            state.phase, state.stage = phase_no, stage
            state.phase_epochs_done = state.stage_epochs_done = done
            if done < phase.epochs:
                label = phase_label(phase_no, phase)
                first = state.epochs_done + 1
                say(f"{label}: {_epochs(done + 1, phase.epochs)} of phase {phase_no}/"
                    f"{len(cfg.phases)}, run {_epochs(first, first + phase.epochs - done - 1)}"
                    f" of {cfg.total_epochs}")
                feeds = _feeds(index, cfg, _phase_recipe(cfg, phase), phase.size,
                               cfg.seed + phase_no, done, options=phase.feed_options())
                predictions = _fit_and_close(
                    model, feeds, phase.epochs, done,
                    stage_callbacks(run, state, stage, phase_no, phase.size, progress,
                                    callbacks, seed=cfg.seed, label=label, run_bar=run_bar),
                    progress, index=index, size=phase.size, cfg=cfg)
            if stage not in state.reports:
                _phase_report(run, model, index, cfg, phase_no, state, predictions)
                state.reports.append(stage)
            if phase_no < len(cfg.phases):         # one write: the report and the next phase
                state.phase, state.stage = phase_no + 1, f"phase-{phase_no + 1}"
                state.phase_epochs_done = state.stage_epochs_done = 0
                run.write_state(state)
    state.status = "done"                          # with the last phase's report
    run.write_state(state)
    return RunResult(run, state, run.read_history(), model, steps)


def _start_model(run: RunDir, cfg: TrainConfig, index, state: RunState | None, steps,
                 reuse: bool):
    """The run's model: ``last.keras`` when it has one, else built from the config; checked
    against the dataset's classes and the phases' sizes before anything trains."""
    if state is not None and run.has_checkpoint("last"):
        model = restore_model(run, state)
    else:
        _seed_keras(cfg.seed)
        model = build_model(cfg, index.num_classes, steps, reuse)
    if model.output_shape[-1] != index.num_classes:
        raise AugmineError(f"{index.root} has {index.num_classes} classes but the run's "
                           f"model predicts {model.output_shape[-1]}; use the run's dataset")
    check_phase_sizes(model, cfg.phases, cfg.path or "config")
    return model


def recorded_model(model_cfg, model):
    """The ModelConfig a run records: a builder/application/file model's ``rescale`` set
    to whether augmine put ``Rescaling(1/255)`` in front (logged when it did)."""
    if model_cfg.kind == "densenet":
        return model_cfg
    added = rescaled(model)
    if added:
        log.warning("model (%s): it has no Rescaling/Normalization layer of its own, so "
                    "augmine added Rescaling(1/255) in front (it gets uint8 images); the run "
                    "records rescale: true (set rescale: false to turn this off)",
                    model_cfg.kind)
    return model_cfg.model_copy(update={"rescale": added})


def train_extra_epochs(run_dir, index, epochs: int, plan=None, class_weight=None,
                       stage: str = "round-1", progress: bool = True, recipe=None,
                       size: int | None = None, extra_callbacks=(), label: str | None = None,
                       seed: int | None = None, teacher: dict | None = None,
                       head_layers: int | None = None, reuse: bool = False,
                       predictions: list | None = None):
    """Train ``epochs`` more epochs from the run's ``last.keras`` (a mining round).

    ``run_dir``: a path or :class:`RunDir`; ``index``: the run's :class:`DatasetIndex`;
    ``plan``: an ``OversamplingPlan`` for the pipeline (None = plain epochs);
    ``class_weight``: Keras ``{class: weight}``;
    ``recipe``: recipe for all classes (default: the last phase's, at the phase's strength;
    its class overrides apply; the plan's own ``recipe`` covers its weak classes);
    ``size``: default the last phase's; ``extra_callbacks``: Keras callbacks added to the
    fit; ``label``: starts each printed epoch line (which arm of a round it is); ``seed``:
    the seed of sampling, augmentation and Keras (default the config's; ``--seeds``);
    ``teacher``: ``{"checkpoint", "temperature", "weight"}``, distil from that frozen model
    on every batch (:func:`~augmine.model.sources.attach_teacher`); ``head_layers``: train
    only the last that many layers with weights (:mod:`augmine.model.sources`; the rest
    frozen during each epoch, trainable in every saved ``last.keras``:
    :func:`~augmine.train.fit.frozen_features`). The optimizer continues (same schedule
    step). Every epoch commits like a phase's, so a killed round resumes by
    calling this again with the same ``stage``; a finished stage is not trained again.
    ``reuse``: train a model kept from an earlier call of this process with the same
    config (its traced steps reused; :func:`~augmine.train.evaluation.reusable_model`:
    shared, so use the returned model before the next call), except with ``teacher`` or
    ``head_layers``, which change the model. ``predictions``: a list that gets the last
    epoch's val ``(y_true, probs)`` when they are the returned model's. Returns the model.
    """
    run = RunDir.of(run_dir)
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1:
        raise AugmineError(f"extra epochs: {epochs!r} is not a valid epoch count; use a "
                           "whole number >= 1")
    epochs = int(epochs)
    state = run.read_state()
    cfg = run.config
    run = process_run(run, cfg.strategy, cfg.batch_size)   # multi-worker: process 0 writes
    run.remove_partial_writes()
    last = cfg.phases[-1]
    size = int(size or last.size)
    seed = cfg.seed if seed is None else int(seed)
    recipe = recipe or _phase_recipe(cfg, last)   # at the last phase's strength
    info = state.rounds.setdefault(stage, RoundProgress(epochs=epochs))
    done = state.stage_done(stage)
    with dtype_policy(precision_policy(cfg.mixed_precision)), distribution(cfg.strategy):
        model = restore_model(run, state, reuse and teacher is None and not head_layers)
        if info.done:
            log.info("%s: stage %s already trained; returning its model", run, stage)
            return model
        info.epochs = epochs
        extra = list(extra_callbacks)
        full_optimizer = model.optimizer
        if head_layers:
            from augmine.model.sources import freeze_all_but_head, head_optimizer
            from augmine.train.fit import frozen_features

            # a checkpoint of a stage killed mid-save may have them frozen already
            info.frozen = sorted(set(info.frozen or ()) |
                                 set(freeze_all_but_head(model, head_layers)))
            model.optimizer = head_optimizer(full_optimizer, model.trainable_variables)
            extra.append(frozen_features(run, info.frozen, full_optimizer))
        if teacher is not None:
            from augmine.model.sources import attach_teacher
            from augmine.runs.factories import load_checkpoint

            attach_teacher(model, load_checkpoint(teacher["checkpoint"], compile=False),
                           teacher["temperature"], teacher["weight"])
        state.status, state.stage, state.stage_epochs_done = "running", stage, done
        run.write_state(state)
        if done < epochs:
            feeds = _feeds(index, cfg, recipe, size,
                           seed + ROUND_SEED_OFFSET + len(state.rounds), done,
                           plan=plan)
            last = _fit_and_close(model, feeds, epochs, done, stage_callbacks(
                run, state, stage, None, size, progress, extra + create_callbacks(cfg),
                seed=seed, label=label), progress, class_weight=class_weight, index=index,
                size=size, cfg=cfg)
            if last is not None and predictions is not None:
                predictions.append(last)
        elif info.frozen:        # killed before frozen_features saved: save it now
            from augmine.model.sources import set_trainable
            from augmine.runs.factories import save_checkpoint

            set_trainable(model, info.frozen, True)
            model.optimizer = full_optimizer
            save_checkpoint(run, model)
        model.optimizer = full_optimizer
    info.epochs_done, info.done = state.stage_epochs_done, True
    state.status = "done"
    run.write_state(state)
    return model


def run_index(data_root, state: RunState | None = None, skip_bad: bool = False,
              progress: bool = False):
    """The dataset a run trains on, every image decoded before the first epoch.

    ``state``: the run's :class:`~augmine.runs.state.RunState` (None for a new run): the
    files it left out before stay out and its ``--skip-bad`` carries on, so a resumed run
    sees the same index. Bad images are left out (each logged) with ``skip_bad``, else one :class:`AugmineError` names them
    and suggests ``--skip-bad`` (see :func:`~augmine.data.dataset.load_checked_index`). Returns
    ``(index, record)``; ``record`` (``{"skip_bad": bool, "skipped": [relative paths]}``)
    belongs in the run's state.
    """
    state = state or RunState()
    skip_bad = bool(skip_bad or state.skip_bad)
    index = load_checked_index(data_root, skip_bad, state.skipped,
                               progress=show_bars(progress))
    return index, {"skip_bad": skip_bad, "skipped": skipped_paths(index)}


def checked_run_index(run_dir, skip_bad: bool = False, progress: bool = False):
    """The recorded dataset of the run in ``run_dir`` checked like :func:`train_run` checks it
    (:func:`run_index`), its held-out slice (``mining.holdout``) split off as ``holdout``; a
    changed skip record is saved in the run's state. Returns the DatasetIndex."""
    run = RunDir.of(run_dir)
    state = run.read_state() if run.has_state() else None
    index, skips = run_index(run.recorded_data(), state, skip_bad, progress)
    run.check_classes(index, f"restore the run's dataset at {run.recorded_data()}"
                      " (its config.yaml records it)", state)
    if state is not None and (state.skip_bad, state.skipped) != (skips["skip_bad"],
                                                                 skips["skipped"]):
        state.skip_bad, state.skipped = skips["skip_bad"], skips["skipped"]
        run.write_state(state)
    return apply_holdout(index, run.config.mining.holdout, run.config.seed)
