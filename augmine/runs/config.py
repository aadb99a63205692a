"""The training config: :class:`TrainConfig` (one pydantic model, its sections in
:mod:`augmine.runs.sections`) and :func:`load_config`, the only reader of training-config YAML.

A training config (YAML, kept in ``recipes/`` next to the augmentation recipes) names the
model, the optimizer, the schedule, the phases (image size, epochs, recipe) and the mining
defaults. :func:`load_config` is the only place that reads one; every problem becomes a
one-line :class:`~augmine.core.errors.AugmineError` naming the file and the key (unknown keys
get a "did you mean"), before anything trains. The objects a config describes are built by
:mod:`augmine.runs.factories` (Keras is imported only there, inside the factories).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import (AfterValidator, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)

from augmine.core.errors import AugmineError
from augmine.runs._internal import _choice, _object_in_context, _Section, _unknown_key, _Whole
from augmine.runs.sections import (MiningConfig, ModelConfig, OptimizerConfig, Phase,
                                   RegularizationConfig, ScheduleConfig)

SECTIONS = {"model": ModelConfig, "optimizer": OptimizerConfig, "schedule": ScheduleConfig,
            "mining": MiningConfig, "regularization": RegularizationConfig, "phases": Phase}
STRATEGIES = ("auto", "mirrored", "default", "multi-worker")   # multi-worker: train.multiworker
# auto: mixed_float16 when a GPU is present; true = mixed_float16; false = float32
PRECISIONS = ("auto", "true", "false", "mixed_float16", "mixed_bfloat16", "float32")


class TrainConfig(_Section):
    """A validated training config (see :func:`load_config`)."""

    name: str = "run"
    description: str = ""
    model: ModelConfig = Field(default_factory=ModelConfig)
    batch_size: _Whole(1, "batch size") = 320
    eval_batch_size: Optional[_Whole(1, "batch size")] = None
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)   # sgd: see its schema
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    seed: _Whole(0, "seed") = 0
    mixed_precision: str = "auto"
    strategy: str = "auto"
    workers: Optional[_Whole(0, "worker count")] = None
    phases: list[Phase]
    mining: MiningConfig = Field(default_factory=MiningConfig)
    regularization: RegularizationConfig = Field(default_factory=RegularizationConfig)
    data: Optional[str] = None
    callbacks: Optional[list[Annotated[str, AfterValidator(_object_in_context)]]] = None
    path: Optional[str] = Field(default=None, exclude=True)
    _recipes: Any = PrivateAttr(default=None)   # a RecipeBook: each recipe file read once

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, raw):
        if not isinstance(raw, dict):
            raise ValueError("a training config is a mapping with keys like name, model, "
                             "phases")
        if not raw.get("phases"):
            raise ValueError("'phases' is missing or empty; add at least one "
                             "{size, epochs, recipe} entry")
        if not isinstance(raw["phases"], list):
            raise ValueError("'phases' must be a list of {size, epochs, recipe}")
        raw = {k: ({} if v is None and k in ("model", "optimizer", "schedule", "mining",
                                              "regularization")
                   else v) for k, v in raw.items()}
        for key in ("name", "description", "data"):
            if raw.get(key) is not None:
                raw[key] = str(raw[key])
        return raw

    @field_validator("mixed_precision", mode="before")
    @classmethod
    def _precision(cls, v):
        v = {True: "true", False: "false"}.get(v, v) if isinstance(v, bool) else v
        return _choice(v, PRECISIONS)

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, v):
        return _choice(v, STRATEGIES)

    @model_validator(mode="after")
    def _sizes_fit_the_model(self):
        blocks, least = self.model.blocks, self.model.min_size
        if self.model.kind != "densenet":
            return self
        for i, phase in enumerate(self.phases, 1):
            if phase.size < least:
                raise ValueError(f"phases[{i}].size: {phase.size} is not a valid image size "
                                 f"(a {blocks}-block DenseNet needs >= {least} px)")
        return self

    @model_validator(mode="after")
    def _cycles_per_phase_fit(self):
        per = self.schedule.cycles_per_phase
        if isinstance(per, list) and len(per) != len(self.phases):
            raise ValueError(f"schedule.cycles_per_phase: {len(per)} entries for "
                             f"{len(self.phases)} phases; give one per phase")
        return self

    @property
    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def with_last_epochs(self, epochs: int | None) -> "TrainConfig":
        """This config with its last phase trained for ``epochs`` (``augmine train
        --epochs``); itself when ``epochs`` is None."""
        if epochs is None:
            return self
        last = self.phases[-1].model_copy(update={"epochs": int(epochs)})
        return self.model_copy(update={"phases": [*self.phases[:-1], last]})

    def recipe(self, path):
        """The validated :class:`~augmine.augment.recipes.Recipe` of one of the config's
        recipe paths: the one parsed when the config was loaded (copies of this config share
        it), else read now, once."""
        if self._recipes is None:
            from augmine.augment.recipes import RecipeBook

            self._recipes = RecipeBook()
        return self._recipes.load(path)

    def check_recipe_classes(self, index) -> None:
        """One-line error unless every class override (``classes:``) of the phases' recipes
        and ``mining.recipe`` names a class of ``index`` (a DatasetIndex)."""
        from augmine.augment.overrides import class_overrides

        recipes = [p.recipe for p in self.phases] + [self.mining.recipe]
        for path in dict.fromkeys(r for r in recipes if r):
            class_overrides(self.recipe(path), index.class_ids, index.class_names)

    def to_dict(self) -> dict:
        """The YAML-ready dict (recipes as absolute paths, unset options left out)."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_yaml(self) -> str:
        """The config as YAML text (what :func:`load_config` reads back)."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------- loading

def _loc(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _one_line(exc: ValidationError, where: str) -> AugmineError:
    """The first problem of a pydantic ValidationError as one line naming file and key."""
    errors = exc.errors(include_url=False)
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = list(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        key = loc.pop()
        owner: Any = TrainConfig
        for part in loc:
            if isinstance(part, str):
                owner = SECTIONS.get(part, owner)
        msg = _unknown_key(key, [k for k in owner.model_fields if k != "path"])
    elif kind == "missing":
        msg = f"missing {loc.pop()!r}"
    elif kind == "value_error":
        msg = str(err["ctx"]["error"])
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        msg = f"expected a mapping (key: value lines), got {type(err['input']).__name__}"
    else:
        msg = f"{err['input']!r} is not valid ({err['msg'][0].lower()}{err['msg'][1:]})"
    place = _loc(loc)
    return AugmineError(f"{where}: {place}: {msg}" if place else f"{where}: {msg}")


def config_default(key: str):
    """The schema's default of a config key (``"mining.epochs"`` -> 5, ``"batch_size"`` ->
    320): what help texts and docs print. A schedule key's default depends on the mode: see
    :data:`augmine.runs.sections.SCHEDULE_DEFAULTS`."""
    section, _, name = key.rpartition(".")
    owner = SECTIONS[section] if section else TrainConfig
    return owner.model_fields[name].get_default(call_default_factory=True)


def load_config(source, base_dir: str | os.PathLike | None = None,
                check_recipes: bool = True) -> TrainConfig:
    """Read and validate a training config: the only reader of training-config YAML.

    ``source``: a YAML path, an already parsed dict (``base_dir`` then resolves relative
    recipe paths) or a :class:`TrainConfig` (returned as is). ``check_recipes=False``
    skips resolving and loading the recipe files (a run folder's recorded config).
    Every default is resolved here, once, from the schema (each field's default, a
    schedule's per mode), so the config holds all its values and a run's ``config.yaml``
    records them; an older ``config.yaml`` without them loads to the same values.
    Returns a :class:`TrainConfig`; raises a one-line :class:`AugmineError` on any problem.
    """
    import yaml

    if isinstance(source, TrainConfig):
        return source
    path = None
    if isinstance(source, dict):
        raw, where = copy.deepcopy(source), "config"
        base = Path(base_dir) if base_dir is not None else None
    else:
        from augmine.core.shipped import resolve_config

        path = resolve_config(source)   # a file, or a built-in name such as cpu-small
        where = str(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" line {mark.line + 1}" if mark is not None else ""
            raise AugmineError(f"{path}:{at} is not valid YAML "
                               f"({getattr(exc, 'problem', exc)})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AugmineError(f"{path}: unreadable ({exc}); check the file") from None
        base = Path(base_dir) if base_dir is not None else path.parent
    if isinstance(raw, dict) and not raw.get("name") and path is not None:
        raw["name"] = path.stem
    book = None
    if check_recipes:
        from augmine.augment.recipes import RecipeBook

        book = RecipeBook()
    try:
        cfg = TrainConfig.model_validate(raw, context={"base_dir": base, "recipes": book,
                                                       "check_recipes": check_recipes})
    except ValidationError as exc:
        raise _one_line(exc, where) from None
    cfg.path = str(path.resolve()) if path else None
    cfg._recipes = book
    return cfg


# --------------------------------------------------------------------------- resuming

def config_differences(recorded: TrainConfig, given: TrainConfig) -> dict[str, tuple]:
    """``{key: (recorded value, given value)}`` for each key the two configs set apart
    (``model.width``, ``phases[2].epochs``; ``phases`` when their counts differ), both
    resolved (:func:`load_config`: a default left out of one and written in the other is
    no difference). ``data``
    is compared by the run folder; ``model.rescale`` only when ``given`` sets it (a run
    records what was done)."""
    a, b = (c.model_dump(mode="json", exclude={"data", "path"}) for c in (recorded, given))
    if b["model"].get("rescale") is None:
        b["model"]["rescale"] = a["model"].get("rescale")
    if len(a["phases"]) != len(b["phases"]):
        a["phases"], b["phases"] = (f"{len(x['phases'])} phases" for x in (a, b))
    fa, fb = _flat(a), _flat(b)
    return {k: (fa.get(k), fb.get(k)) for k in dict.fromkeys([*fa, *fb]) if fa.get(k) != fb.get(k)}


def _flat(value, key: str = "") -> dict:
    """``{dotted key: value}`` of a dumped config (phases as ``phases[N]``)."""
    if isinstance(value, dict):
        return {k2: v2 for k, v in value.items()
                for k2, v2 in _flat(v, f"{key}.{k}" if key else str(k)).items()}
    if key == "phases" and isinstance(value, list):
        return {k2: v2 for i, v in enumerate(value, 1)
                for k2, v2 in _flat(v, f"phases[{i}]").items()}
    return {key: value}


def resume_config(recorded: TrainConfig, state, given=None, epochs: int | None = None,
                  run="the run") -> tuple[TrainConfig, list[str]]:
    """The config a resumed run trains: ``recorded`` (the run's ``config.yaml``) with the one
    change a resume may make, the last phase's epochs (from ``given``, a config source like
    :func:`load_config`'s, or ``epochs``, ``augmine train --epochs``), never below the epochs
    that phase has done; ``state``: the run's RunState. Any other difference from
    ``given`` is a one-line :class:`AugmineError` listing the keys. Returns ``(config,
    lines)``, one printed line per change applied."""
    cfg, where = recorded, f"--resume {run}"
    last_key = f"phases[{len(recorded.phases)}].epochs"
    if given is not None:
        given_cfg = load_config(given)
        where = f"{given_cfg.path or 'config'} given to --resume {run}"
        diffs = config_differences(recorded, given_cfg)
        wanted = diffs.pop(last_key, (None, None))[1]
        if diffs:
            shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diffs.items())[:6])
            more = f" (and {len(diffs) - 6} more)" if len(diffs) > 6 else ""
            raise AugmineError(f"{where} differs from the run's config.yaml in {shown}{more}; "
                               f"a resume continues the same run (only the last phase's "
                               f"epochs may change): resume with the run's own config "
                               f"(`augmine train --run-dir {run} --resume`), or train the "
                               "new config into a new --run-dir")
        epochs = epochs if epochs is not None else wanted
    if epochs is None or int(epochs) == recorded.phases[-1].epochs:
        return cfg, []
    old, n = recorded.phases[-1].epochs, len(recorded.phases)
    if state.rounds:
        raise AugmineError(f"{where}: the run has mining rounds after its phases, so its last "
                           f"phase cannot change from {old} to {epochs} epochs; train the "
                           "longer config into a new --run-dir")
    done = (state.phase_epochs_done or 0) if (state.phase or 1) == n else 0
    if int(epochs) < max(done, 1):
        raise AugmineError(f"{where}: phase {n} has already trained {done} epoch"
                           f"{'s' if done != 1 else ''}, more than the {epochs} asked; give at "
                           f"least {done}")
    cfg = recorded.with_last_epochs(epochs)
    return cfg, [f"{last_key}: {old} -> {epochs} (run epochs {recorded.total_epochs} -> "
                 f"{cfg.total_epochs}); config.yaml records it"]
