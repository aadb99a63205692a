"""The loss and accuracy of a run with label smoothing or MixUp/CutMix (see
:mod:`augmine.train.regularization`): they take int labels (B,) and soft labels (B, C) alike.
Registered for Keras serialization (``augmine>...``), so checkpoints of such runs load once
this module is imported (:func:`augmine.runs.checkpoints.load_checkpoint` does).
"""

from __future__ import annotations

from augmine.core.runtime import import_keras

keras = import_keras()


def _soft_targets(y_true, num_classes: int):
    """``y_true`` as (B, C) float32: int labels (B,) or (B, 1) one-hot, soft labels as is."""
    from keras import ops

    if len(y_true.shape) == 1 or y_true.shape[-1] == 1 and num_classes != 1:
        return ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), num_classes)
    return ops.cast(y_true, "float32")


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
    return ops.cast(ops.equal(ops.argmax(y, axis=-1), ops.argmax(y_pred, axis=-1)), "float32")


def accuracy_metric():
    """The ``accuracy`` metric (history key ``accuracy``/``val_accuracy``) for soft targets."""
    return keras.metrics.MeanMetricWrapper(soft_target_accuracy, name="accuracy")


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
