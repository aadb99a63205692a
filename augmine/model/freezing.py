"""Training only a model's head: which layers train, freezing the rest and undoing it.

The ``head`` round mode trains the last ``head_layers`` layers that hold weights (1: the
classifier; the reference DenseNet's last block is ``2 * layers_per_block + 2``: its
BN-ReLU-Conv layers, the final BN and the classifier) and freezes every other layer with
Keras' ``trainable = False``, so its weights get no updates and its BatchNormalization runs
in inference mode (its moving statistics stay too). A saved model records ``trainable``
per layer, so the trainer sets it back (:func:`set_trainable`) before the round's model is
kept.
"""

from __future__ import annotations

from augmine.core.errors import AugmineError


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
