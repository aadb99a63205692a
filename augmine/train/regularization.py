"""Regularisation a from-scratch run needs: label smoothing and MixUp/CutMix on batches.

(Weight decay is the optimizer's own ``weight_decay``: Keras 3 optimizers apply it
decoupled from the gradient, ``w -= lr * weight_decay * w`` after each update, for SGD as
for AdamW; see ``keras.optimizers.Optimizer._apply_weight_decay``.)

Why this shape: Keras 3.15's ``SparseCategoricalCrossentropy`` has no ``label_smoothing``
and Keras' ``MixUp``/``CutMix`` layers mix one-hot labels, while augmine's feed yields
``(uint8 images, int labels)``. So when any of these is on, the training feed is wrapped
(:func:`mix_feed`: a ``tf.data`` ``map`` on TensorFlow, a ``PyDataset`` on JAX/PyTorch)
to apply Keras' own layers to ``(images, one_hot(labels))``, and the model is compiled
with :class:`augmine.model.sources.SoftTargetCrossentropy`, which takes sparse labels
(validation) and soft ones (mixed training batches) alike, and an accuracy that does too. With everything off the
model keeps plain sparse cross-entropy and the feed is not touched.

The mixing layers draw from their own seed generator (seeded per stage), so a run with
MixUp/CutMix is reproducible from the start but a resume mid-stage draws new mixes.
"""

from __future__ import annotations

from typing import Callable

from augmine.core.runtime import import_keras, keras_backend

keras = import_keras()


def batch_mixer(num_classes: int, mixup: float = 0.0, cutmix: float = 0.0,
                seed: int | None = None) -> Callable | None:
    """``mix(images, labels, batch_no) -> (float32 images, float32 soft labels (B, C))``
    with Keras' ``MixUp(alpha=mixup)`` and/or ``CutMix(factor=cutmix)`` (0 = off; both on:
    even batches MixUp, odd ones CutMix); None when both are off. Images are uint8 or float
    in [0, 255] (B, S, S, 3), labels int (B,). Works eagerly and inside ``tf.data``
    (TensorFlow backend). CutMix labels are weighted by the pixels actually pasted."""
    layers = []
    if mixup:
        layers.append(keras.layers.MixUp(alpha=float(mixup), seed=seed, dtype="float32"))
    if cutmix:
        layers.append(keras.layers.CutMix(factor=float(cutmix), seed=seed, dtype="float32"))
    if not layers:
        return None

    def apply(layer, images, y):
        if not isinstance(layer, keras.layers.CutMix):
            out = layer({"images": images, "labels": y})
            return out["images"], out["labels"]
        # Keras' CutMix weights labels by the box's real-valued area but pastes whole
        # pixels (off by up to 2 px per side: 20%+ of the label at 16 px); weight them by
        # the pasted pixels instead, as the CutMix paper does.
        from keras import ops

        t = layer.get_random_transformation({"images": images, "labels": y}, training=True)
        mixed = layer.transform_images(images, t, training=True)
        pasted = ops.mean(ops.cast(t["batch_masks"][..., :1], "float32"), axis=(1, 2, 3))
        other = ops.take(y, t["permutation_order"], axis=0)
        return mixed, (1.0 - pasted)[:, None] * y + pasted[:, None] * other

    def mix(images, labels, batch_no=0):
        from keras import ops

        y = ops.one_hot(ops.cast(labels, "int32"), num_classes)
        images = ops.cast(images, "float32")
        if len(layers) == 1:
            return apply(layers[0], images, y)
        if isinstance(batch_no, int):
            return apply(layers[batch_no % 2], images, y)
        from augmine.core.runtime import import_tensorflow

        tf = import_tensorflow()  # inside tf.data (TensorFlow backend): batch_no is a tensor

        return tf.cond(batch_no % 2 == 0, lambda: apply(layers[0], images, y),
                       lambda: apply(layers[1], images, y))

    return mix


_MixedFeed = None


def mix_feed(feed, mix: Callable):
    """The training feed ``feed`` (from :func:`augmine.feed.feeds.train_dataset`) with
    ``mix`` (:func:`batch_mixer`) applied to every batch: yields ``(float32 images, soft
    labels (B, C))``, same number of batches; :func:`augmine.feed.feeds.close_feed` still
    stops its workers."""
    global _MixedFeed
    core = feed._augmine_feed
    if keras_backend() == "tensorflow":
        mixed = feed.enumerate().map(lambda i, batch: mix(batch[0], batch[1], i))
        mixed._augmine_feed = core
        mixed._augmine_source = feed      # keeps the source (and its finalizer) alive
        return mixed
    if _MixedFeed is None:
        class MixedFeed(keras.utils.PyDataset):
            """A PyDataset that mixes the batches of another one."""

            def __init__(self, source, mix):
                super().__init__(workers=1, use_multiprocessing=False)
                self._augmine_source, self._mix = source, mix
                self._augmine_feed = source._augmine_feed

            def __len__(self):
                return len(self._augmine_source)

            def __getitem__(self, index):
                images, labels = self._augmine_source[index]
                x, y = self._mix(images, labels, int(index))
                return keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y)

            def on_epoch_begin(self):
                self._augmine_source.on_epoch_begin()

            def on_epoch_end(self):
                self._augmine_source.on_epoch_end()

        _MixedFeed = MixedFeed
    return _MixedFeed(feed, mix)
