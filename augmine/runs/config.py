"""The training config: one pydantic model, one YAML reader, and the factories built from it.

A training config (YAML, kept in ``recipes/`` next to the augmentation recipes) names the
model, the optimizer, the schedule, the phases (image size, epochs, recipe) and the mining
defaults. :func:`load_config` is the only place that reads one; every problem becomes a
one-line :class:`~augmine.core.errors.AugmineError` naming the file and the key (unknown keys
get a "did you mean"), before anything trains.

Each part builds its own object, timm style: :func:`create_schedule`,
:func:`create_optimizer`, :func:`create_model`. Keras is imported only inside them.
"""

from __future__ import annotations

import copy
import math
import os
from difflib import get_close_matches
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Optional, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError,
                      ValidationInfo, field_validator, model_validator)

from augmine.core.errors import AugmineError

# Same names and keys as augmine.model.schedules.SCHEDULE_MODES and create_schedule (repeated so
# config checks need no Keras import; tests/test_schedules.py checks they agree).
SCHEDULE_MODES = ("triangular", "triangular2", "exp_range", "one_cycle", "cosine")
_CYCLIC_KEYS = ("min_lr", "max_lr", "half_cycle", "cycles_per_phase", "cycle_epochs", "gamma")
SCHEDULE_KEYS = {"triangular": _CYCLIC_KEYS, "triangular2": _CYCLIC_KEYS,
                 "exp_range": _CYCLIC_KEYS,
                 "one_cycle": ("min_lr", "max_lr", "final_lr", "warmup_fraction",
                               "warmup_steps", "warmup_epochs", "anneal"),
                 "cosine": ("min_lr", "max_lr", "warmup_steps", "warmup_epochs")}
STRATEGIES = ("auto", "mirrored", "default")
# auto: mixed_float16 when a GPU is present; true = mixed_float16; false = float32
PRECISIONS = ("auto", "true", "false", "mixed_float16", "mixed_bfloat16", "float32")
OPTIMIZER_ARGS = {
    "sgd": ("momentum", "nesterov", "weight_decay", "clipnorm", "global_clipnorm"),
    "adam": ("beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay", "clipnorm",
             "global_clipnorm"),
    "adamw": ("beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay", "clipnorm",
              "global_clipnorm"),
    "rmsprop": ("rho", "momentum", "epsilon", "centered", "weight_decay", "clipnorm",
                "global_clipnorm"),
}


# --------------------------------------------------------------------------- value checks

def _whole(value, minimum: int = 1, what: str = "value"):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not math.isfinite(value)) or \
            int(value) != value or value < minimum:
        raise ValueError(f"{value!r} is not a valid {what}; use a whole number >= {minimum}")
    return int(value)


def _number(value, minimum: float = 0.0, strict: bool = False, below: float | None = None):
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and \
        math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if ok and below is not None and value >= below:
        raise ValueError(f"{value!r} must be below {below}")
    if not ok:
        raise ValueError(f"{value!r} is not valid; use a number "
                         f"{'>' if strict else '>='} {minimum}")
    return float(value)


def _choice(value, choices) -> str:
    text = str(value).lower()
    if text not in choices:
        close = get_close_matches(text, list(choices), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"choose one of {', '.join(choices)}"
        raise ValueError(f"{value!r} is unknown; {hint}")
    return text


def _Whole(minimum: int, what: str):
    return Annotated[int, BeforeValidator(partial(_whole, minimum=minimum, what=what))]


def _Number(minimum: float = 0.0, strict: bool = False, below: float | None = None):
    return Annotated[float, BeforeValidator(partial(_number, minimum=minimum, strict=strict,
                                                    below=below))]


def _unknown_key(key, allowed) -> str:
    close = get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(allowed)}"
    return f"unknown key {key!r}; {hint}"


def _resolve_recipe(name, base_dir: Path | None) -> str:
    """A recipe path: relative to the config file first, then a name in ``recipes/``;
    validated in full now, before anything trains."""
    from augmine.augment.recipes import load_recipe, resolve_recipe

    if not isinstance(name, str) or not name.strip():
        raise ValueError("'recipe' must name a recipe file, e.g. light.yaml")
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).is_file():
        path = base_dir / path
    elif not path.is_file():
        try:
            path = Path(resolve_recipe(name))
        except AugmineError as exc:
            raise ValueError(f"recipe {name!r} not found next to the config or in "
                             f"recipes/ ({exc})") from None
        if not path.is_file():
            raise ValueError(f"recipe file {path} does not exist; fix the name or create "
                             "the recipe")
    try:
        load_recipe(path)
    except AugmineError as exc:
        raise ValueError(str(exc)) from None
    return str(path.resolve())


def _recipe_in_context(value, info: ValidationInfo):
    ctx = info.context or {}
    if value is None or not ctx.get("check_recipes", True):
        return None if value is None else str(value)
    return _resolve_recipe(value, ctx.get("base_dir"))


# --------------------------------------------------------------------------- the schema

class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=False)

    def options(self) -> dict:
        """The keys set in this section (None values left out), as a plain dict."""
        return self.model_dump(exclude_none=True)


DENSENET_KEYS = ("width", "growth_rate", "blocks", "layers_per_block", "compression",
                 "dropout", "weight_decay")
MODEL_SOURCES = ("builder", "application", "file")


def _object_in_context(value, info: ValidationInfo):
    """A ``package.module:function`` name, imported now unless the config is a run's record."""
    from augmine.core.runtime import find_object

    if value is not None and (info.context or {}).get("check_recipes", True):
        find_object(value)
    return value


class ModelConfig(_Section):
    """The model: the reference DenseNet (its hyper-parameters, see
    :func:`augmine.model.densenet.build_densenet`; None = its default) or one of ``builder``
    (``"package.module:function"``, called as ``function(num_classes=..., **args)``),
    ``application`` (a ``keras.applications`` name, from scratch, ``args`` passed on) or
    ``file`` (a saved ``.keras`` model). ``rescale``: put ``Rescaling(1/255)`` in front of a
    builder/application/file model (None = when it has no scaling layer of its own; the run
    records what was done). See :mod:`augmine.model.sources`."""

    width: Optional[_Whole(1, "width")] = None
    growth_rate: Optional[_Whole(1, "growth_rate")] = None
    blocks: Optional[_Whole(1, "block count")] = None
    layers_per_block: Optional[_Whole(1, "layers_per_block")] = None
    compression: Optional[_Number(0.0, strict=True)] = None
    dropout: Optional[_Number(0.0, below=1.0)] = None
    weight_decay: Optional[_Number(0.0)] = None
    builder: Optional[str] = None
    application: Optional[str] = None
    file: Optional[str] = None
    args: Optional[dict[str, Any]] = None
    rescale: Optional[bool] = None

    _builder = field_validator("builder")(_object_in_context)

    @field_validator("compression")
    @classmethod
    def _compression(cls, v):
        if v is not None and not 0 < v <= 1:
            raise ValueError("must be in (0, 1]")
        return v

    @field_validator("file")
    @classmethod
    def _file(cls, v, info: ValidationInfo):
        ctx = info.context or {}
        if v is None or not ctx.get("check_recipes", True):
            return v
        path = Path(v).expanduser()
        if not path.is_absolute() and ctx.get("base_dir") is not None:
            path = Path(ctx["base_dir"]) / path
        if not path.is_file():
            raise ValueError(f"{v} does not exist; fix the path (relative paths start at the "
                             "config's folder)")
        return str(path.resolve())

    @model_validator(mode="after")
    def _one_source(self):
        sources = [k for k in MODEL_SOURCES if getattr(self, k) is not None]
        if len(sources) > 1:
            raise ValueError(f"give one of {', '.join(sources)}, not several")
        dense = [k for k in DENSENET_KEYS if getattr(self, k) is not None]
        if sources and dense:
            keys = "is a DenseNet key that does" if len(dense) == 1 else \
                "are DenseNet keys that do"
            raise ValueError(f"{', '.join(dense)} {keys} not apply to a model from "
                             f"{sources[0]}; remove {'it' if len(dense) == 1 else 'them'} "
                             f"or the {sources[0]}")
        if self.args is not None and not (self.builder or self.application):
            raise ValueError("'args' goes with a builder or an application; remove it")
        return self

    @property
    def kind(self) -> str:
        """``densenet``, ``builder``, ``application`` or ``file``."""
        return next((k for k in MODEL_SOURCES if getattr(self, k) is not None), "densenet")

    @property
    def min_size(self) -> int:
        """Smallest image size (px) this DenseNet accepts (1 for other models: they are
        checked when built)."""
        return 2 ** ((self.blocks or 5) - 1) if self.kind == "densenet" else 1


class OptimizerConfig(_Section):
    """``name`` (sgd, adam, adamw, rmsprop) and that optimizer's Keras arguments."""

    name: str = "sgd"
    momentum: Optional[float] = None
    nesterov: Optional[bool] = None
    beta_1: Optional[float] = None
    beta_2: Optional[float] = None
    epsilon: Optional[float] = None
    amsgrad: Optional[bool] = None
    rho: Optional[float] = None
    centered: Optional[bool] = None
    weight_decay: Optional[float] = None
    clipnorm: Optional[float] = None
    global_clipnorm: Optional[float] = None

    @model_validator(mode="before")
    @classmethod
    def _keys_of_this_optimizer(cls, raw):
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        name = str(raw.get("name", "sgd")).lower()
        if name not in OPTIMIZER_ARGS:
            close = get_close_matches(name, list(OPTIMIZER_ARGS), n=1)
            hint = f"did you mean {close[0]!r}?" if close else \
                f"choose one of {', '.join(OPTIMIZER_ARGS)}"
            raise ValueError(f"name {name!r} is not supported; {hint}")
        for key in raw:
            if key != "name" and key not in OPTIMIZER_ARGS[name]:
                raise ValueError(f"({name}) {_unknown_key(key, OPTIMIZER_ARGS[name])}")
        if name == "sgd":
            raw.setdefault("momentum", 0.9)
            raw.setdefault("nesterov", True)
        raw["name"] = name
        return raw

    def kwargs(self) -> dict:
        """Keyword arguments of the Keras optimizer (everything set except ``name``)."""
        return {k: v for k, v in self.options().items() if k != "name"}


class ScheduleConfig(_Section):
    """The learning-rate schedule (:func:`augmine.model.schedules.create_schedule` builds it).

    Cyclic modes (``triangular``, ``triangular2``, ``exp_range``): ``half_cycle`` is a step
    count (the reference run's 2000) or ``auto`` (cycles aligned to the phases, with
    ``cycles_per_phase`` or ``cycle_epochs``); ``one_cycle``: ``final_lr``, ``anneal``
    (cos, linear) and one ``warmup_*`` key; ``cosine``: one ``warmup_*`` key. Unset keys
    take create_schedule's defaults (min_lr 0.001, max_lr 0.05, half_cycle 2000 for the
    cyclic modes)."""

    mode: str = "triangular"
    min_lr: Optional[_Number(0.0, strict=True)] = None
    max_lr: Optional[_Number(0.0, strict=True)] = None
    half_cycle: Optional[Union[int, str]] = None
    cycles_per_phase: Optional[Union[int, list[int]]] = None
    cycle_epochs: Optional[_Number(0.0, strict=True)] = None
    gamma: Optional[_Number(0.0, strict=True)] = None
    final_lr: Optional[_Number(0.0, strict=True)] = None
    warmup_fraction: Optional[_Number(0.0, below=1.0)] = None
    warmup_steps: Optional[_Whole(0, "step count")] = None
    warmup_epochs: Optional[_Number(0.0)] = None
    anneal: Optional[str] = None

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, v):
        return _choice(v, SCHEDULE_MODES)

    @field_validator("half_cycle", mode="before")
    @classmethod
    def _half_cycle(cls, v):
        if v is None or (isinstance(v, str) and v.lower() == "auto"):
            return None if v is None else "auto"
        if isinstance(v, str):
            raise ValueError(f"{v!r} is not valid; use a step count or 'auto'")
        return _whole(v, 1, "step count")

    @field_validator("cycles_per_phase", mode="before")
    @classmethod
    def _cycles(cls, v):
        if isinstance(v, list):
            return [_whole(c, 1, "cycle count") for c in v]
        return None if v is None else _whole(v, 1, "cycle count")

    @field_validator("anneal", mode="before")
    @classmethod
    def _anneal(cls, v):
        return None if v is None else _choice(v, ("cos", "linear"))

    @model_validator(mode="after")
    def _ordered(self):
        allowed = SCHEDULE_KEYS[self.mode]
        for key in self.options():
            if key != "mode" and key not in allowed:
                raise ValueError(f"{key!r} does not apply to mode {self.mode!r}; it takes "
                                 f"{', '.join(allowed)}")
        if self.min_lr is not None and self.max_lr is not None and self.min_lr > self.max_lr:
            raise ValueError(f"min_lr {self.min_lr} is above max_lr {self.max_lr}; swap them")
        if (self.cycles_per_phase is not None or self.cycle_epochs is not None) and \
                self.half_cycle != "auto":
            raise ValueError("cycles_per_phase and cycle_epochs need half_cycle: auto")
        if self.cycles_per_phase is not None and self.cycle_epochs is not None:
            raise ValueError("give cycles_per_phase or cycle_epochs, not both")
        warm = [k for k in ("warmup_fraction", "warmup_steps", "warmup_epochs")
                if getattr(self, k) is not None]
        if len(warm) > 1:
            raise ValueError(f"give one of {', '.join(warm)}, not several")
        return self


class RegularizationConfig(_Section):
    """Off by default (0): ``label_smoothing`` e (targets ``(1 - e) * y + e / C``),
    ``mixup`` (Keras ``MixUp`` alpha) and ``cutmix`` (Keras ``CutMix`` factor) on training
    batches (both on: alternate batches); see :mod:`augmine.train.regularization`. Weight decay
    is the optimizer's ``weight_decay`` (decoupled)."""

    label_smoothing: _Number(0.0, below=1.0) = 0.0
    mixup: _Number(0.0) = 0.0
    cutmix: _Number(0.0) = 0.0

    @field_validator("cutmix")
    @classmethod
    def _factor(cls, v):
        if v > 1:
            raise ValueError(f"{v} is not valid; CutMix's factor is in [0, 1]")
        return v

    @property
    def soft_targets(self) -> bool:
        """Whether the loss must take soft targets (anything on)."""
        return bool(self.label_smoothing or self.mixup or self.cutmix)


class MiningConfig(_Section):
    """Defaults of ``augmine mine plan``/``round`` (see :mod:`augmine.rounds.plans`)."""

    policy: Optional[str] = None
    k: Optional[_Whole(1, "class count")] = None
    threshold: Optional[float] = None
    z: Optional[float] = None
    factor: Optional[_Number(0.0, strict=True)] = None
    cap: Optional[_Number(0.0, strict=True)] = None
    epochs: Optional[_Whole(1, "epoch count")] = None
    recipe: Optional[str] = None
    scheme: Optional[str] = None
    class_weight: Optional[bool] = None
    partners: Optional[_Whole(1, "partner count")] = None   # confusion partners per class (pairs)
    # selection apart from measurement (rounds.plans), the control and the round's own LR
    # (rounds.runner)
    holdout: Optional[_Number(0.0, below=1.0)] = None
    selection: Optional[str] = None
    control: Optional[bool] = None
    min_lr: Optional[_Number(0.0, strict=True)] = None
    max_lr: Optional[_Number(0.0, strict=True)] = None

    _recipe = field_validator("recipe")(_recipe_in_context)


class Phase(_Section):
    """One training phase: image ``size`` (px), ``epochs``, the ``recipe`` (absolute path),
    its ``strength`` (None = 1, as written; see :func:`augmine.augment.recipes.scale_recipe`) and
    ``presize``: shrink every image to ``size`` once and keep the shrunk images decoded in
    memory, so the recipe runs on small images (a cheaper small phase; crops then come from
    the shrunk image, not the same augmentation)."""

    size: int
    epochs: _Whole(1, "epoch count")
    recipe: str = "none"
    strength: Optional[_Number(0.0)] = None
    presize: bool = False

    def feed_options(self) -> dict:
        """The phase's keyword arguments for :func:`augmine.feed.feeds.train_dataset`."""
        return {"presize": self.presize, "cache": "memory" if self.presize else None}

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
            raise ValueError(f"{v!r} is not a valid image size; use a whole number of pixels")
        if v > 2048:
            raise ValueError(f"{v} px is too large; use at most 2048")
        return int(v)

    _recipe = field_validator("recipe", mode="before")(_recipe_in_context)


class TrainConfig(_Section):
    """A validated training config (see :func:`load_config`)."""

    name: str = "run"
    description: str = ""
    model: ModelConfig = Field(default_factory=ModelConfig)
    batch_size: _Whole(1, "batch size") = 320
    eval_batch_size: Optional[_Whole(1, "batch size")] = None
    optimizer: OptimizerConfig = Field(
        default_factory=lambda: OptimizerConfig(momentum=0.9, nesterov=True))
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
        blocks, least = self.model.blocks or 5, self.model.min_size
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
                owner = {"model": ModelConfig, "optimizer": OptimizerConfig,
                         "schedule": ScheduleConfig, "mining": MiningConfig,
                         "regularization": RegularizationConfig,
                         "phases": Phase}.get(part, owner)
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


def load_config(source, base_dir: str | os.PathLike | None = None,
                check_recipes: bool = True) -> TrainConfig:
    """Read and validate a training config: the only reader of training-config YAML.

    ``source``: a YAML path, an already parsed dict (``base_dir`` then resolves relative
    recipe paths) or a :class:`TrainConfig` (returned as is). ``check_recipes=False``
    skips resolving and loading the recipe files (a run folder's recorded config).
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
        from augmine.augment.recipes import resolve_config

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
    try:
        cfg = TrainConfig.model_validate(raw, context={"base_dir": base,
                                                       "check_recipes": check_recipes})
    except ValidationError as exc:
        raise _one_line(exc, where) from None
    cfg.path = str(path.resolve()) if path else None
    return cfg


# --------------------------------------------------------------------------- factories

def create_schedule(cfg: ScheduleConfig, phase_steps=None, where: str = "config"):
    """The Keras learning-rate schedule ``cfg`` describes
    (:func:`augmine.model.schedules.create_schedule`).

    ``phase_steps``: one ``(steps_per_epoch, epochs)`` pair per phase (needed by
    ``half_cycle: auto``, ``one_cycle`` and ``cosine``); ``where``: the config file named in
    errors. A spec that does not fit the phases raises a one-line :class:`AugmineError`.
    """
    from augmine.model.schedules import create_schedule as build

    try:
        return build(cfg.options(), phase_steps)
    except ValueError as exc:
        steps = ""
        if phase_steps:
            parts = [f"{p[1]} epochs x {p[0]} steps" if isinstance(p, (tuple, list))
                     else f"{p} steps" for p in phase_steps]
            steps = f" (phases: {', '.join(parts)})"
        raise AugmineError(f"{where}: schedule: {exc}{steps}") from None


def create_optimizer(cfg: OptimizerConfig, schedule):
    """The Keras optimizer ``cfg`` names, driven by ``schedule`` (a schedule or a float)."""
    from augmine.core.runtime import import_keras

    keras = import_keras()
    cls = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam,
           "adamw": keras.optimizers.AdamW, "rmsprop": keras.optimizers.RMSprop}[cfg.name]
    kwargs = cfg.kwargs()
    if not kwargs.get("weight_decay"):
        kwargs.pop("weight_decay", None)   # 0 = off: no per-step decay ops at all
    return cls(learning_rate=schedule, **kwargs)


def create_model(cfg: ModelConfig, num_classes: int, where: str = "config"):
    """The (uncompiled) model ``cfg`` describes, with ``num_classes`` outputs: the DenseNet,
    or a builder/application/file model taking uint8 images (see
    :func:`augmine.model.sources.build_any`). ``where``: the config file named in errors."""
    if cfg.kind != "densenet":
        from augmine.model.sources import build_any

        return build_any(cfg, num_classes, where)
    from augmine.model.densenet import build_densenet

    return build_densenet(num_classes, **cfg.options())


def create_callbacks(cfg: TrainConfig) -> list:
    """The Keras callbacks the config's ``callbacks:`` factories return (each called with no
    arguments); a factory that fails or returns no Callback is a one-line error."""
    from augmine.core.runtime import import_keras, load_object

    keras, where, out = import_keras(), cfg.path or "config", []
    for i, spec in enumerate(cfg.callbacks or (), 1):
        factory = load_object(spec, f"callbacks[{i}]", where)
        try:
            callback = factory()
        except Exception as exc:  # noqa: BLE001 - the user's code: one line, not a traceback
            raise AugmineError(f"{where}: callbacks[{i}]: {spec}() failed ({type(exc).__name__}: "
                               f"{exc}); fix the factory") from None
        if not isinstance(callback, keras.callbacks.Callback):
            raise AugmineError(f"{where}: callbacks[{i}]: {spec}() returned a "
                               f"{type(callback).__name__}, not a keras.callbacks.Callback")
        out.append(callback)
    return out
