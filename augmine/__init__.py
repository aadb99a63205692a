"""augmine: data-centric augmentation and hard-class mining for small-image classifiers.

Importing the package is cheap: TensorFlow, Keras and albumentations are imported
lazily by the modules that need them. Importing it also sets two quiet defaults
(each only when the user has not set it already):

- ``NO_ALBUMENTATIONS_UPDATE=1``: albumentations otherwise checks online for a newer
  version at import, which stalls on offline machines;
- ``TF_CPP_MIN_LOG_LEVEL=2``: TensorFlow's C++ start-up INFO/WARNING lines are hidden
  (``augmine --verbose`` brings them back).
"""

import os

__version__ = "0.1.0"

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
