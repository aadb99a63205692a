"""The models a training config can name: the reference DenseNet, a builder function, a Keras
Applications name or a saved ``.keras`` file; the soft-target loss and metric checkpoints
of regularised runs need; training only a model's head.

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


# =========================================================================== densenet
# The reference DenseNet for Tiny-ImageNet, in plain Keras 3 layers.
#
# Structure (Huang et al. 2017, as used in the Tiny-ImageNet write-ups that trained it
# with progressive resizing):
#
# - input scaling: ``Rescaling(1/255)``, so the model (and a saved copy) takes raw images in
# [0, 255], uint8 or float, as augmine's feed sends them (a quarter of the bytes of float32);
# - stem: Conv 3x3 (``width`` filters, stride 1, so 16 px inputs still reach the last block);
# - ``blocks`` dense blocks of ``layers_per_block`` BN-ReLU-Conv 3x3 layers, each adding
# ``growth_rate`` channels that are concatenated to its input;
# - a transition after every block but the last: BN-ReLU-Conv 1x1 to ``compression`` x the
# channels, then 2x2 average pooling;
# - BN-ReLU, global average pooling, optional dropout, a Dense softmax classifier.
#
# The input shape is ``(None, None, 3)``, so the same weights train at 16, 32 and 64 px.
# Only Keras layers are used, so the model runs under the TensorFlow, JAX and PyTorch
# backends. The classifier (Dense + softmax) always computes in float32, so the output
# stays numerically safe under the ``mixed_float16`` policy.

# Defaults give 8,886,158 parameters at 200 classes (the reference run: about 8.9M).
DEFAULT_WIDTH = 96
DEFAULT_GROWTH_RATE = 136


def min_input_size(blocks: int = 5) -> int:
    """Smallest square input (px) that still leaves one pixel after the ``blocks - 1`` poolings."""
    return 2 ** (blocks - 1)


def build_densenet(num_classes: int, width: int = DEFAULT_WIDTH,
                   growth_rate: int = DEFAULT_GROWTH_RATE, blocks: int = 5,
                   layers_per_block: int = 3, compression: float = 0.5,
                   dropout: float = 0.0, weight_decay: float = 0.0,
                   name: str = "densenet"):
    """Build the DenseNet classifier.

    Inputs: raw images ``(B, H, W, 3)`` uint8 or float in [0, 255] (the first layer,
    ``rescale``, divides by 255), any ``H, W >= 2**(blocks-1)``.
    Output: ``(B, num_classes)`` float32 softmax probabilities.
    ``weight_decay`` adds an L2 penalty of that factor on every conv/dense kernel;
    ``dropout`` is applied before the classifier. Returns an uncompiled ``keras.Model``.
    """
    keras = import_keras()
    from keras import layers

    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"compression must be in (0, 1], got {compression}")
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None

    def conv(x, filters, kernel, tag):
        return layers.Conv2D(filters, kernel, padding="same", use_bias=False,
                             kernel_initializer="he_normal", kernel_regularizer=reg,
                             name=tag)(x)

    def bn_relu(x, tag):
        x = layers.BatchNormalization(epsilon=1.001e-5, name=f"{tag}_bn")(x)
        return layers.Activation("relu", name=f"{tag}_relu")(x)

    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = conv(x, width, 3, "stem_conv")
    channels = width
    for b in range(1, blocks + 1):
        for i in range(1, layers_per_block + 1):
            tag = f"block{b}_layer{i}"
            y = conv(bn_relu(x, tag), growth_rate, 3, f"{tag}_conv")
            x = layers.Concatenate(name=f"{tag}_concat")([x, y])
            channels += growth_rate
        if b < blocks:
            tag = f"transition{b}"
            channels = max(1, int(channels * compression))
            x = conv(bn_relu(x, tag), channels, 1, f"{tag}_conv")
            x = layers.AveragePooling2D(2, strides=2, name=f"{tag}_pool")(x)
    x = bn_relu(x, "final")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(num_classes, kernel_regularizer=reg, dtype="float32", name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


# =========================================================================== losses
# The loss and accuracy of a run with label smoothing or MixUp/CutMix (see
# :mod:`augmine.train.regularization`): they take int labels (B,) and soft labels (B, C) alike.
# Registered for Keras serialization (``augmine>...``) when first asked for
# (:func:`soft_target_objects`; :func:`augmine.runs.factories.load_checkpoint` asks), so
# importing this module imports no Keras, as :func:`augmine.model.schedules.keras_schedules`
# does for the schedules.

SOFT_TARGET_NAMES = ("SoftTargetCrossentropy", "soft_target_accuracy")
_soft_target_objects: dict = {}


def _soft_targets(y_true, num_classes: int):
    """``y_true`` as (B, C) float32: int labels (B,) or (B, 1) one-hot, soft labels as is."""
    from keras import ops

    if len(y_true.shape) == 1 or y_true.shape[-1] == 1 and num_classes != 1:
        return ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), num_classes)
    return ops.cast(y_true, "float32")


def soft_target_objects() -> dict:
    """``{"SoftTargetCrossentropy": class, "soft_target_accuracy": function}``, defined and
    registered for Keras serialization on the first call (Keras is imported then)."""
    if _soft_target_objects:
        return _soft_target_objects
    keras = import_keras()

    @keras.saving.register_keras_serializable(package="augmine", name="SoftTargetCrossentropy")
    class SoftTargetCrossentropy(keras.losses.Loss):
        """Cross-entropy of softmax outputs (B, C) against int labels (B,) or soft labels (B, C)
        (MixUp/CutMix), with ``label_smoothing`` e: targets ``(1 - e) * y + e / C``
        (Keras' ``categorical_crossentropy``). The loss of a perfect prediction is then the
        entropy of the smoothed target, not 0."""

        def __init__(self, label_smoothing: float = 0.0, name: str = "soft_target_crossentropy",
                     **kwargs):
            super().__init__(name=name, **kwargs)
            self.label_smoothing = float(label_smoothing)

        def call(self, y_true, y_pred):
            y = _soft_targets(y_true, y_pred.shape[-1])
            return keras.losses.categorical_crossentropy(
                y, keras.ops.cast(y_pred, "float32"), label_smoothing=self.label_smoothing)

        def get_config(self):
            return {**super().get_config(), "label_smoothing": self.label_smoothing}

    @keras.saving.register_keras_serializable(package="augmine", name="soft_target_accuracy")
    def soft_target_accuracy(y_true, y_pred):
        """Per-sample 1.0/0.0: the predicted class is the label (int labels) or the label's
        largest share (soft labels, i.e. the dominant image of a mixed one)."""
        from keras import ops

        y = _soft_targets(y_true, y_pred.shape[-1])
        return ops.cast(ops.equal(ops.argmax(y, axis=-1), ops.argmax(y_pred, axis=-1)),
                        "float32")

    _soft_target_objects.update(SoftTargetCrossentropy=SoftTargetCrossentropy,
                                soft_target_accuracy=soft_target_accuracy)
    return _soft_target_objects


def __getattr__(name: str):
    """``SoftTargetCrossentropy`` and ``soft_target_accuracy`` as module attributes
    (``from augmine.model.sources import SoftTargetCrossentropy``), made on first use."""
    if name in SOFT_TARGET_NAMES:
        return soft_target_objects()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def accuracy_metric():
    """The ``accuracy`` metric (history key ``accuracy``/``val_accuracy``) for soft targets."""
    return import_keras().metrics.MeanMetricWrapper(soft_target_objects()["soft_target_accuracy"],
                                                     name="accuracy")


def distillation_loss(teacher_probs, student_probs, temperature: float):
    """Per-sample (B,) ``T**2 * KL(teacher || student)`` of the two softmax outputs (B, C)
    softened by temperature ``T`` (Hinton et al. 2015): both are turned back into
    logits (``log p``, equal to the logits up to a per-sample constant that the softmax
    cancels) and divided by ``T``; ``T**2`` keeps the gradient's scale as ``T`` changes."""
    from keras import ops

    t = float(temperature)
    log_teacher = ops.log_softmax(ops.log(ops.clip(ops.cast(teacher_probs, "float32"),
                                                    1e-7, 1.0)) / t, axis=-1)
    log_student = ops.log_softmax(ops.log(ops.clip(ops.cast(student_probs, "float32"),
                                                    1e-7, 1.0)) / t, axis=-1)
    return t * t * ops.sum(ops.exp(log_teacher) * (log_teacher - log_student), axis=-1)


def attach_teacher(model, teacher, temperature: float, weight: float):
    """Make ``model``'s training loss its compiled loss plus ``weight`` x the mean
    :func:`distillation_loss` against ``teacher`` (a Keras model with the same outputs,
    never updated) on the same batch; evaluation (``training=False``: the val loss) keeps
    the compiled loss alone. The teacher runs as the student does, in training mode
    (BatchNormalization on the batch's statistics; dropout, if any, on), through
    ``stateless_call`` so nothing of it changes: the term is zero while the student still
    equals the teacher (in inference mode the two differ by the batch statistics alone).
    Only this ``model`` object changes (its ``compute_loss``, Keras' hook for a custom
    loss): a checkpoint saved from it is the plain model, and the teacher is not saved.
    Runs on every backend (``keras.ops``). Returns ``model``."""
    import types

    from keras import ops

    plain = model.compute_loss
    weight, temperature = float(weight), float(temperature)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = plain(x, y, y_pred, sample_weight, training=training)
        if not training or not weight:
            return loss
        out, _ = teacher.stateless_call([v.value for v in teacher.trainable_variables],
                                        [v.value for v in teacher.non_trainable_variables],
                                        x, training=True)
        soft = ops.stop_gradient(out)
        return loss + weight * ops.mean(distillation_loss(soft, y_pred, temperature))

    model.compute_loss = types.MethodType(compute_loss, model)
    return model


# =========================================================================== freezing
# Training only a model's head: which layers train, freezing the rest and undoing it.
#
# The ``head`` round mode trains the last ``head_layers`` layers that hold weights (1: the
# classifier; the reference DenseNet's last block is ``2 * layers_per_block + 2``: its
# BN-ReLU-Conv layers, the final BN and the classifier) and freezes every other layer with
# Keras' ``trainable = False``, so its weights get no updates and its BatchNormalization runs
# in inference mode (its moving statistics stay too). A saved model records ``trainable``
# per layer, so the trainer sets it back (:func:`set_trainable`) before the round's model is
# kept.

def head_layer_names(model, head_layers: int) -> list[str]:
    """Names of the last ``head_layers`` layers of ``model`` that hold weights (layer order:
    the functional graph's), first to last; a one-line error when it has fewer."""
    weighted = [layer for layer in model.layers if layer.weights]
    if not 1 <= int(head_layers) <= len(weighted):
        raise AugmineError(f"mining.head_layers {head_layers}: the model has "
                           f"{len(weighted)} layers with weights; use 1 to {len(weighted)}")
    return [layer.name for layer in weighted[-int(head_layers):]]


def freeze_all_but_head(model, head_layers: int) -> list[str]:
    """Set ``trainable = False`` on every trainable layer with weights outside the head
    (:func:`head_layer_names`); returns the names it froze (for :func:`set_trainable`)."""
    head = set(head_layer_names(model, head_layers))
    frozen = [layer.name for layer in model.layers
              if layer.weights and layer.trainable and layer.name not in head]
    set_trainable(model, frozen, False)
    return frozen


def set_trainable(model, names, trainable: bool) -> None:
    """Set ``trainable`` on ``model``'s layers named in ``names``."""
    for name in names:
        model.get_layer(name).trainable = bool(trainable)


def head_optimizer(optimizer, head_variables):
    """An optimizer for the head alone: ``optimizer``'s class and config built on
    ``head_variables``, with its step and the head's slots (momentums etc.) copied over.
    (On JAX an optimizer updates exactly the variables it was built on, so the run's
    optimizer, built on every layer, cannot train the head alone.)"""
    head = optimizer.__class__.from_config(optimizer.get_config())
    head.build(list(head_variables))
    copy_optimizer_state(optimizer, head)
    return head


def copy_optimizer_state(source, target) -> None:
    """Assign ``target``'s step and each slot variable the value of ``source``'s variable
    of the same path (slots are named after their model variable); others are left."""
    target.iterations.assign(source.iterations)
    values = {v.path: v for v in source.variables}
    for v in target.variables:
        if v.path in values and tuple(v.shape) == tuple(values[v.path].shape):
            v.assign(values[v.path])


# =========================================================================== sources

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
    """The uncompiled model a :class:`~augmine.runs.config.ModelConfig` with ``builder``,
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
