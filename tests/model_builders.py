"""Model builders the tests name in training configs (``model_builders:tiny_cnn``).

pytest puts ``tests/`` on ``sys.path``, so ``builder: model_builders:tiny_cnn`` imports this
module; only standard Keras layers are used, so saved checkpoints load without it.
"""

from __future__ import annotations


def tiny_cnn(num_classes: int, filters: int = 8, size: int | None = None):
    """A two-conv CNN on raw images (no scaling layer of its own): ``(B, H, W, 3)`` ->
    ``(B, num_classes)`` softmax. ``size``: a fixed input side in px (None = any size)."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(size, size, 3))
    x = layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(filters * 2, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="tiny_cnn")


def not_a_model(num_classes: int):
    """Returns a string: what a broken builder looks like."""
    return f"{num_classes} classes"


def csv_logger():
    """A callback factory (``callbacks: [model_builders:csv_logger]``): logs epochs to
    ``user_log.csv`` in the working folder."""
    import keras

    return keras.callbacks.CSVLogger("user_log.csv", append=True)
