"""The sections of a training config, one pydantic model each: ``model``
(:class:`ModelConfig`), ``optimizer``, ``schedule`` (the only schema of the schedule keys;
:func:`augmine.runs.factories.create_schedule` builds from it), ``regularization``,
``mining`` and one of ``phases`` (:class:`Phase`). :class:`augmine.runs.config.TrainConfig`
holds them; :func:`augmine.runs.config.load_config` is the only YAML reader.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Union

from pydantic import ValidationInfo, field_validator, model_validator

from augmine.augment.strength import MAX_STRENGTH
from augmine.core.naming import did_you_mean
from augmine.model.densenet import build_densenet, min_input_size  # no Keras until called
from augmine.model.schedules import MODES as CYCLIC_MODES  # plain Python: no Keras import
from augmine.runs._internal import (_builtin_recipe_in_context, _choice, _number, _Number,
                                    _object_in_context, _recipe_in_context, _Section,
                                    _unknown_key, _Whole, _whole)

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
    :func:`augmine.model.densenet.build_densenet`; the keys left out are resolved to its
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
    its ``strength`` (None = 1, as written; see :func:`augmine.augment.strength.scale_recipe`) and
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
