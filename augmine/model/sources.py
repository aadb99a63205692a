"""Any Keras model in a training config: a builder function, a Keras Applications name or a
saved ``.keras`` file, beside the reference DenseNet (:mod:`augmine.model.densenet`).

augmine's feed sends raw ``uint8`` images ``(B, S, S, 3)`` in [0, 255]. A model that does
not scale them itself (no ``Rescaling`` or ``Normalization`` layer among its first layers) is
wrapped with ``keras.layers.Rescaling(1/255)`` in front (the wrapper layer is named
``augmine_rescale``); ``rescale: false`` turns that off, ``rescale: true`` forces it.

Keras Applications are built from scratch (``weights=None``) with their own input scaling
where they have one (``include_preprocessing=True``: EfficientNetV2, MobileNetV3, ConvNeXt,
RegNet, ResNetRS; EfficientNet always has it); the others (ResNetV2, DenseNet, MobileNetV2,
...) expect their ``preprocess_input`` and get the ``Rescaling(1/255)`` wrapper instead, which
serves a model trained from scratch as well. They are built without their top
(``include_top=False``, ``pooling="avg"``, ``input_shape=(None, None, 3)``: one model for every
phase size) plus a float32 ``Dense`` softmax over ``num_classes`` (safe under mixed
precision); ``args: {input_shape: [S, S, 3]}`` builds Keras' own top at that fixed size.
"""

from __future__ import annotations

from pathlib import Path

from augmine.core.errors import AugmineError
from augmine.core.naming import did_you_mean
from augmine.core.runtime import import_keras, load_object

RESCALE_LAYER = "augmine_rescale"
SCALING_LAYERS = ("Rescaling", "Normalization")
FIRST_LAYERS = 3          # how deep into the model to look for its own input scaling


def _flat_layers(model) -> list:
    """The layers of ``model`` in order, nested models opened, Input layers left out."""
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.__class__.__name__ in (
                "Functional", "Sequential", "Model"):
            out += _flat_layers(layer)
        elif layer.__class__.__name__ != "InputLayer":
            out.append(layer)
    return out


def scales_its_input(model) -> bool:
    """Whether one of the first layers of ``model`` is a ``Rescaling`` or ``Normalization``."""
    return any(layer.__class__.__name__ in SCALING_LAYERS
               for layer in _flat_layers(model)[:FIRST_LAYERS])


def rescaled(model) -> bool:
    """Whether ``model`` carries augmine's ``Rescaling(1/255)`` wrapper."""
    return any(layer.name == RESCALE_LAYER for layer in model.layers)


def with_rescaling(model):
    """``model`` behind a ``Rescaling(1/255)`` layer: takes uint8 [0, 255] images of the same
    shape ``(B, H, W, 3)`` and returns what ``model`` returns."""
    keras = import_keras()
    inputs = keras.Input(shape=tuple(model.input_shape[1:]), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name=RESCALE_LAYER)(inputs)
    return keras.Model(inputs, model(x), name=f"{model.name}_rescaled")


def _application(name: str, num_classes: int, args: dict, where: str):
    keras = import_keras()
    import inspect

    known = sorted(n for n in dir(keras.applications) if n[:1].isupper())
    if name.removeprefix("keras.applications.") not in known:
        hint = did_you_mean(name, known, cutoff=0.5) or f"known: {', '.join(known[:12])}, ..."
        raise AugmineError(f"{where}: model.application: {name!r} is not a keras.applications "
                           f"model; {hint}")
    build = getattr(keras.applications, name.removeprefix("keras.applications."))
    params = inspect.signature(build).parameters
    kwargs = {"weights": None}
    if "include_preprocessing" in params:
        kwargs["include_preprocessing"] = True
    fixed = args.get("input_shape") is not None and None not in tuple(args["input_shape"])
    if fixed:
        kwargs.update(include_top=True, classes=num_classes)
    else:
        kwargs.update(include_top=False, pooling="avg", input_shape=(None, None, 3))
    kwargs.update(args)
    if "input_shape" in kwargs and kwargs["input_shape"] is not None:
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
    try:
        base = build(**kwargs)
    except (ValueError, TypeError) as exc:
        raise AugmineError(f"{where}: model.application {name}: {str(exc).splitlines()[0]}; "
                           "change its args") from None
    if kwargs.get("include_top"):
        return base
    out = keras.layers.Dense(num_classes, dtype="float32", name="logits")(base.output)
    out = keras.layers.Activation("softmax", dtype="float32", name="probs")(out)
    return keras.Model(base.input, out, name=base.name)


def _from_builder(spec: str, num_classes: int, args: dict, where: str):
    build = load_object(spec, "model.builder", where)
    try:
        model = build(num_classes=num_classes, **args)
    except TypeError as exc:
        raise AugmineError(f"{where}: model.builder {spec}: {exc}; it is called as "
                           f"function(num_classes=..., **args)") from None
    keras = import_keras()
    if not isinstance(model, keras.Model):
        raise AugmineError(f"{where}: model.builder {spec} returned a "
                           f"{type(model).__name__}, not a keras.Model")
    return model


def _from_file(path: str, where: str):
    if not Path(path).is_file():
        raise AugmineError(f"{where}: model.file: {path} does not exist; fix the path "
                           "(relative paths start at the config's folder)")
    keras = import_keras()
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError, TypeError) as exc:
        raise AugmineError(f"{where}: model.file: cannot load {path} "
                           f"({str(exc).splitlines()[0]}); register its custom layers with "
                           "keras.saving.register_keras_serializable") from None


def build_any(cfg, num_classes: int, where: str = "config"):
    """The uncompiled model a :class:`~augmine.runs.sections.ModelConfig` with ``builder``,
    ``application`` or ``file`` describes, wrapped in ``Rescaling(1/255)`` when it does not
    scale its input (``rescale`` None = detect, True = always, False = never).

    Input: uint8 images ``(B, H, W, 3)``; output ``(B, num_classes)`` probabilities.
    Raises a one-line :class:`AugmineError` when it cannot be built or predicts another
    number of classes.
    """
    kind = cfg.kind
    args = dict(cfg.args or {})
    if kind == "builder":
        model = _from_builder(cfg.builder, num_classes, args, where)
    elif kind == "application":
        model = _application(cfg.application, num_classes, args, where)
    else:
        model = _from_file(cfg.file, where)
    if len(model.output_shape) != 2 or model.output_shape[-1] != num_classes:
        raise AugmineError(f"{where}: model.{kind}: the model outputs {model.output_shape}; "
                           f"the dataset needs (None, {num_classes}) class probabilities")
    if cfg.rescale or (cfg.rescale is None and not scales_its_input(model)):
        model = with_rescaling(model)
    return model


def fixed_size(model) -> tuple[int, int] | None:
    """``(H, W)`` when ``model`` only takes one image size, else None."""
    shape = tuple(model.input_shape)
    if len(shape) != 4:
        raise AugmineError(f"the model takes inputs of shape {shape}; augmine feeds images "
                           "(B, H, W, 3)")
    return None if shape[1] is None or shape[2] is None else (int(shape[1]), int(shape[2]))


def check_phase_sizes(model, phases, where: str = "config") -> None:
    """One-line error when ``model`` takes a fixed image size that some ``phases`` (the
    config's Phase list) do not have, naming the model's size and those phases."""
    size = fixed_size(model)
    if size is None:
        return
    other = [f"phases[{i}] {p.size} px" for i, p in enumerate(phases, 1)
             if (p.size, p.size) != size]
    if other:
        raise AugmineError(f"{where}: the model takes {size[0]}x{size[1]} px images only; "
                           f"{', '.join(other)} {'differs' if len(other) == 1 else 'differ'}: make every phase {size[0]} px or build "
                           "the model with input_shape=(None, None, 3)")
