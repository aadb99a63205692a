"""TensorFlow-only pieces, imported only when Keras runs on TensorFlow.

Distribution section: :func:`mirrored_strategy`: the ``tf.distribute`` strategy the trainer builds and fits in
(:func:`augmine.training.distribution` calls it on the TensorFlow backend).
"""

from __future__ import annotations

from .runtime import import_tensorflow


# --------------------------------------------------------------------------- distribution

def mirrored_strategy(name: str = "auto"):
    """A ``tf.distribute`` strategy.

    ``auto``: MirroredStrategy over all local GPUs when there is more than one, else the
    default (single-device) strategy; ``mirrored``: MirroredStrategy over all GPUs, or over
    all logical CPU devices when there is no GPU; ``default``: no distribution.
    """
    tf = import_tensorflow()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "default" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    if len(devices) == 1:
        return tf.distribute.get_strategy()
    cross = None if gpus else tf.distribute.ReductionToOneDevice()
    return tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=cross)
