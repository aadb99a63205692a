"""The training config: :class:`TrainConfig` (one pydantic model), its sections (``model``,
``optimizer``, ``schedule``, ``regularization``, ``mining``, ``phases``) with every default
and bound on its field, and :func:`load_config`, the only reader of training-config YAML.

A training config (YAML, kept in ``recipes/`` next to the augmentation recipes) names the
model, the optimizer, the schedule, the phases (image size, epochs, recipe) and the mining
defaults. :func:`load_config` is the only place that reads one; every problem becomes a
one-line :class:`~augmine.core.errors.AugmineError` naming the file and the key (unknown keys
get a "did you mean"), before anything trains. The objects a config describes are built by
:mod:`augmine.runs.factories` (Keras is imported only there, inside the factories).
"""

from __future__ import annotations

import copy
import inspect
import math
import os
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Callable, NamedTuple, Optional, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      field_validator, model_validator, PrivateAttr, ValidationError,
                      ValidationInfo)

from augmine.augment.compose import MAX_STRENGTH
from augmine.core.errors import AugmineError
from augmine.core.naming import did_you_mean
from augmine.model.schedules import MODES as CYCLIC_MODES
from augmine.model.sources import build_densenet, min_input_size


# =========================================================================== schema pieces
# Shared pieces of the config schema (:mod:`augmine.runs.config`, :mod:`augmine.runs.config`):
# value checks with one-line messages, recipe and ``module:function`` resolution, the section
# base class.

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
        hint = did_you_mean(text, choices) or f"choose one of {', '.join(choices)}"
        raise ValueError(f"{value!r} is unknown; {hint}")
    return text


def _Whole(minimum: int, what: str):
    return Annotated[int, BeforeValidator(partial(_whole, minimum=minimum, what=what))]


def _Number(minimum: float = 0.0, strict: bool = False, below: float | None = None):
    return Annotated[float, BeforeValidator(partial(_number, minimum=minimum, strict=strict,
                                                    below=below))]


def _unknown_key(key, allowed) -> str:
    hint = did_you_mean(key, allowed) or f"known keys: {', '.join(allowed)}"
    return f"unknown key {key!r}; {hint}"


def _resolve_recipe(name, base_dir: Path | None, book=None) -> str:
    """A recipe path: relative to the config file first, then a name in ``recipes/``;
    validated in full now, before anything trains (kept in ``book``, a
    :class:`~augmine.augment.recipes.RecipeBook`, when given)."""
    from augmine.augment.recipes import load_recipe
    from augmine.core.runtime import resolve_recipe

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
    try:
        book.load(path) if book is not None else load_recipe(path)
    except AugmineError as exc:
        raise ValueError(str(exc)) from None
    return str(path.resolve())


def _recipe_in_context(value, info: ValidationInfo):
    ctx = info.context or {}
    if value is None or not ctx.get("check_recipes", True):
        return None if value is None else str(value)
    return _resolve_recipe(value, ctx.get("base_dir"), ctx.get("recipes"))


def _builtin_recipe_in_context(value, info: ValidationInfo):
    """As :func:`_recipe_in_context`, but a built-in recipe given by its bare name keeps that
    name (as the schema's default does), so a config reads the same with it written out or
    left out."""
    from augmine.core.runtime import recipes_dir

    resolved = _recipe_in_context(value, info)
    if resolved is not None and Path(value).name == value and \
            Path(resolved).parent == recipes_dir().resolve():
        return value
    return resolved


def _object_in_context(value, info: ValidationInfo):
    """A ``package.module:function`` name, imported now (the config's folder first, see
    :func:`~augmine.core.runtime.find_object`) unless the config is a run's record."""
    from augmine.core.runtime import find_object

    ctx = info.context or {}
    if value is not None and ctx.get("check_recipes", True):
        find_object(value, ctx.get("base_dir"))
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=False)

    def options(self) -> dict:
        """The keys set in this section (None values left out), as a plain dict."""
        return self.model_dump(exclude_none=True)


# =========================================================================== sections
# The sections of a training config, one pydantic model each: ``model``
# (:class:`ModelConfig`), ``optimizer``, ``schedule`` (the only schema of the schedule keys;
# :func:`augmine.runs.factories.create_schedule` builds from it), ``regularization``,
# ``mining`` and one of ``phases`` (:class:`Phase`). :class:`augmine.runs.config.TrainConfig`
# holds them; :func:`augmine.runs.config.load_config` is the only YAML reader.

SCHEDULE_MODES = CYCLIC_MODES + ("one_cycle", "cosine")
# The keys each schedule mode takes (gamma: used by exp_range, accepted and ignored by the
# other cyclic modes, as CyclicLR does).
_CYCLIC_KEYS = ("min_lr", "max_lr", "half_cycle", "cycles_per_phase", "cycle_epochs", "gamma")
SCHEDULE_KEYS = {**{mode: _CYCLIC_KEYS for mode in CYCLIC_MODES},
                 "one_cycle": ("min_lr", "max_lr", "final_lr", "warmup_fraction",
                               "warmup_steps", "warmup_epochs", "anneal"),
                 "cosine": ("min_lr", "max_lr", "warmup_steps", "warmup_epochs")}


class Derived(NamedTuple):
    """A default worked out from the section's other values: ``text`` says how (the docs'
    words), ``value(section)`` gives it (None: the key stays unset)."""

    text: str
    value: Callable[[Any], Any]


# The default of each schedule key a mode takes, filled in by ScheduleConfig when the config
# leaves the key out (in this order: min_lr follows max_lr, final_lr follows min_lr); the
# factory (runs.factories.create_schedule) and the round's LR (rounds.runner) read the
# resolved values, and a run's config.yaml records them.
_CYCLIC_DEFAULTS = {
    "max_lr": 0.05, "min_lr": 0.001, "gamma": 0.99994, "half_cycle": 2000,
    "cycles_per_phase": Derived("1 with half_cycle: auto, unless cycle_epochs",
                                lambda s: 1 if s.half_cycle == "auto" and
                                s.cycle_epochs is None else None)}
SCHEDULE_DEFAULTS = {
    **{mode: _CYCLIC_DEFAULTS for mode in CYCLIC_MODES},
    "one_cycle": {"max_lr": 0.05, "min_lr": Derived("max_lr / 25", lambda s: s.max_lr / 25),
                  "final_lr": Derived("min_lr / 1000", lambda s: s.min_lr / 1000),
                  "warmup_fraction": Derived("0.3, unless warmup_steps or warmup_epochs",
                                             lambda s: 0.3 if s.warmup_steps is None and
                                             s.warmup_epochs is None else None),
                  "anneal": "cos"},
    "cosine": {"max_lr": 0.05, "min_lr": Derived("max_lr / 100", lambda s: s.max_lr / 100),
               "warmup_steps": Derived("0, unless warmup_epochs",
                                       lambda s: 0 if s.warmup_epochs is None else None)},
}
OPTIMIZER_ARGS = {
    "sgd": ("momentum", "nesterov", "weight_decay", "clipnorm", "global_clipnorm"),
    "adam": ("beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay", "clipnorm",
             "global_clipnorm"),
    "adamw": ("beta_1", "beta_2", "epsilon", "amsgrad", "weight_decay", "clipnorm",
              "global_clipnorm"),
    "rmsprop": ("rho", "momentum", "epsilon", "centered", "weight_decay", "clipnorm",
                "global_clipnorm"),
}


DENSENET_KEYS = ("width", "growth_rate", "blocks", "layers_per_block", "compression",
                 "dropout", "weight_decay")
MODEL_SOURCES = ("builder", "application", "file")


class ModelConfig(_Section):
    """The model: the reference DenseNet (its hyper-parameters, see
    :func:`augmine.model.sources.build_densenet`; the keys left out are resolved to its
    defaults, the one place they live) or one of ``builder``
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
        if not sources:     # the DenseNet: unset keys resolved to build_densenet's defaults
            builder = inspect.signature(build_densenet).parameters
            for key in DENSENET_KEYS:
                if getattr(self, key) is None:
                    setattr(self, key, builder[key].default)
        return self

    @property
    def kind(self) -> str:
        """``densenet``, ``builder``, ``application`` or ``file``."""
        return next((k for k in MODEL_SOURCES if getattr(self, k) is not None), "densenet")

    @property
    def min_size(self) -> int:
        """Smallest image size (px) this DenseNet accepts (1 for other models: they are
        checked when built)."""
        return min_input_size(self.blocks) if self.kind == "densenet" else 1


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
            hint = did_you_mean(name, OPTIMIZER_ARGS) or \
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
    """The learning-rate schedule, stepped per batch
    (:func:`augmine.runs.factories.create_schedule` builds it). Validation fills every key
    the mode takes and the config leaves out with its default (:data:`SCHEDULE_DEFAULTS`,
    the one place they live), so the section holds the schedule in full. ``mode`` and the
    keys it takes (:data:`SCHEDULE_KEYS`):

    - ``triangular`` / ``triangular2`` / ``exp_range`` (cyclic, Smith 2017): ``min_lr``,
      ``max_lr``, ``gamma`` (used by ``exp_range`` only) and ``half_cycle``: a step count
      gives ``CyclicLR``, which ignores phases; ``auto`` gives ``PhaseCyclicLR`` with cycles
      aligned to the phases (``cycles_per_phase``, int or one per phase, or
      ``cycle_epochs``), so every phase and the run end at ``min_lr``.
    - ``one_cycle`` (Smith & Topin 2018): the rate rises linearly from ``min_lr`` to
      ``max_lr`` over the warm-up (``warmup_fraction`` of the run, or ``warmup_steps`` /
      ``warmup_epochs``), then anneals to ``final_lr`` at the run's end. ``anneal: cos`` is
      Keras' ``CosineDecay``; ``linear`` (Smith & Topin's form) comes down linearly to
      ``min_lr`` over as many steps as the warm-up took, then to ``final_lr`` at the end.
    - ``cosine``: Keras' ``CosineDecay``: linear warm-up from ``min_lr`` to ``max_lr`` over
      ``warmup_steps`` / ``warmup_epochs`` (0: starts at ``max_lr``), then cosine decay to
      ``min_lr`` at the run's end.
    """

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

    @field_validator("gamma")
    @classmethod
    def _gamma(cls, v):
        if v is not None and v > 1:
            raise ValueError(f"{v} is not valid; gamma is in (0, 1]")
        return v

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
        if (self.cycles_per_phase is not None or self.cycle_epochs is not None) and \
                self.half_cycle != "auto":
            raise ValueError("cycles_per_phase and cycle_epochs need half_cycle: auto")
        if self.cycles_per_phase is not None and self.cycle_epochs is not None:
            raise ValueError("give cycles_per_phase or cycle_epochs, not both")
        warm = [k for k in ("warmup_fraction", "warmup_steps", "warmup_epochs")
                if getattr(self, k) is not None]
        if len(warm) > 1:
            raise ValueError(f"give one of {', '.join(warm)}, not several")
        return self._resolved()

    def _resolved(self):
        """This section with the mode's defaults filled in (:data:`SCHEDULE_DEFAULTS`) and
        the learning rates in order: 0 < final_lr <= min_lr <= max_lr."""
        given = {k for k in SCHEDULE_KEYS[self.mode] if getattr(self, k) is not None}
        for key, default in SCHEDULE_DEFAULTS[self.mode].items():
            if getattr(self, key) is None:
                setattr(self, key, default.value(self) if isinstance(default, Derived)
                        else default)
        said = lambda k: f"{k} {getattr(self, k):g}" + ("" if k in given else  # noqa: E731
                                                        " (the default)")
        if self.min_lr > self.max_lr:
            raise ValueError(f"{said('min_lr')} is above {said('max_lr')}; lower min_lr or "
                             "raise max_lr")
        if self.final_lr is not None and self.final_lr > self.min_lr:
            raise ValueError(f"{said('final_lr')} is above {said('min_lr')}; lower final_lr")
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
    """Defaults of ``augmine mine plan``/``round``/``compare``/``auto`` (see
    :mod:`augmine.rounds.plans`); the command-line options win over them. A default of None
    is worked out per run, as each comment says."""

    policy: str = "bottom-k"        # how weak classes are chosen (analysis.policies)
    k: Optional[_Whole(1, "class count")] = None   # None: a tenth of the classes
    threshold: Optional[float] = None               # the threshold policy's F1 bound
    z: Optional[float] = None                       # zscore: None = 1.0 (analysis.policies)
    # None: the largest factor (at most 3) adding at most 10 points to the chosen classes'
    # share of an epoch (analysis.plans.bounded_factor)
    factor: Optional[_Number(0.0, strict=True)] = None
    cap: Optional[_Number(0.0, strict=True)] = None
    epochs: _Whole(1, "epoch count") = 5            # extra epochs of a round (each arm)
    recipe: Optional[str] = None                    # a stronger recipe for the chosen classes
    # mine compare's recipe mode: the stronger recipe when ``recipe`` is unset
    compare_recipe: str = "tiny-imagenet-14.yaml"
    scheme: Optional[str] = None                    # None: proportional with cap, else fixed
    class_weight: bool = False                      # mine round's mode: class-weight, else oversample
    partners: _Whole(1, "partner count") = 1        # confusion partners per class (pairs)
    # selection apart from measurement (rounds.plans; None: holdout when set, else
    # val-half), the control and the round's own LR (rounds.runner; None: the schedule's
    # min_lr, and a tenth of the way up to its max_lr)
    holdout: Optional[_Number(0.0, below=1.0)] = None
    selection: Optional[str] = None
    control: bool = True
    min_lr: Optional[_Number(0.0, strict=True)] = None
    max_lr: Optional[_Number(0.0, strict=True)] = None
    # top-1 points a round may lose on the selection images and still be kept (rounds.keep)
    keep_tolerance: _Number(0.0) = 0.5
    # the distill mode (rounds.arms): soft targets of the round's start model, loss = the
    # usual loss + distill_weight * T**2 * KL at temperature T (model.losses)
    distill_temperature: _Number(0.0, strict=True) = 2.0
    distill_weight: _Number(0.0) = 1.0
    # the head mode: the last head_layers layers with weights train (1: the classifier)
    head_layers: _Whole(1, "layer count") = 1

    _recipe = field_validator("recipe")(_recipe_in_context)
    _compare_recipe = field_validator("compare_recipe")(_builtin_recipe_in_context)


class Phase(_Section):
    """One training phase: image ``size`` (px), ``epochs``, the ``recipe`` (absolute path),
    its ``strength`` (None = 1, as written; see :func:`augmine.augment.compose.scale_recipe`) and
    ``presize``: shrink every image to ``size`` once and keep the shrunk images decoded in
    memory, so the recipe runs on small images (a cheaper small phase; crops then come from
    the shrunk image, not the same augmentation)."""

    size: int
    epochs: _Whole(1, "epoch count")
    recipe: str = "none"
    strength: Optional[float] = None
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

    @field_validator("strength", mode="before")
    @classmethod
    def _strength(cls, v):
        if v is None:
            return v
        v = _number(v)
        if v > MAX_STRENGTH:
            raise ValueError(f"{v:g} is out of range; use a number from 0 (no augmentation) "
                             f"to {MAX_STRENGTH:g} (1 = the recipe as written)")
        return v


# =========================================================================== config

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
        from augmine.augment.compose import class_overrides

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
    :data:`augmine.runs.config.SCHEDULE_DEFAULTS`."""
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
        from augmine.core.runtime import resolve_config

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
