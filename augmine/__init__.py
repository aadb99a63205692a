"""augmine: data-centric augmentation and hard-class mining for small-image classifiers.

Importing the package is cheap: TensorFlow, Keras and albumentations are imported
lazily by the modules that need them. Importing it also sets two quiet defaults
(each only when the user has not set it already):

- ``NO_ALBUMENTATIONS_UPDATE=1``: albumentations otherwise checks online for a newer
  version at import, which stalls on offline machines;
- ``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's C++ start-up INFO/WARNING lines are hidden
  (``augmine --verbose`` brings them back).

The names a Keras user needs are exported here and imported on first use (so ``import
augmine`` stays cheap); docs/python-api.md walks through them::

    import augmine
    index = augmine.load_index("data/tiny-imagenet-sample")
    feed = augmine.train_dataset(index, "light", size=32, batch_size=64, seed=0)
    model.fit(feed, epochs=5, callbacks=[augmine.PerClassReport("runs/mine", index, 32)])

The feeds send uint8 images ``(B, S, S, 3)`` in [0, 255]: the model scales them itself.
"""

import os

__version__ = "0.1.0"

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# public name -> the module that defines it (imported lazily by __getattr__)
_EXPORTS = {
    "AugmineError": "core.errors",
    "load_index": "data.dataset", "DatasetIndex": "data.dataset",
    "load_recipe": "augment.recipes",
    "train_dataset": "feed.feeds", "eval_dataset": "feed.feeds", "close_feed": "feed.feeds",
    "evaluate_model": "train.evaluation",
    "per_class_report": "analysis.metrics", "confusion_matrix": "analysis.metrics",
    "symmetric_pairs": "analysis.metrics", "make_plan": "analysis.plans", "OversamplingPlan": "analysis.plans",
    "PerClassReport": "train.callbacks", "oversampled_feed": "train.callbacks",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'augmine' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
