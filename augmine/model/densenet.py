"""The reference DenseNet for Tiny-ImageNet, in plain Keras 3 layers.

Structure (Huang et al. 2017, as used in the Tiny-ImageNet write-ups that trained it
with progressive resizing):

- input scaling: ``Rescaling(1/255)``, so the model (and a saved copy) takes raw images in
  [0, 255], uint8 or float, as augmine's feed sends them (a quarter of the bytes of float32);
- stem: Conv 3x3 (``width`` filters, stride 1, so 16 px inputs still reach the last block);
- ``blocks`` dense blocks of ``layers_per_block`` BN-ReLU-Conv 3x3 layers, each adding
  ``growth_rate`` channels that are concatenated to its input;
- a transition after every block but the last: BN-ReLU-Conv 1x1 to ``compression`` x the
  channels, then 2x2 average pooling;
- BN-ReLU, global average pooling, optional dropout, a Dense softmax classifier.

The input shape is ``(None, None, 3)``, so the same weights train at 16, 32 and 64 px.
Only Keras layers are used, so the model runs under the TensorFlow, JAX and PyTorch
backends. The classifier (Dense + softmax) always computes in float32, so the output
stays numerically safe under the ``mixed_float16`` policy.
"""

from __future__ import annotations

from augmine.core.runtime import import_keras

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
