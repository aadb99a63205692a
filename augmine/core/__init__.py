"""Base layer: one-line errors (`errors`), atomic writes (`atomic`), quiet lazy imports of TensorFlow/Keras and the active backend (`runtime`), the shipped files (`shipped`)."""
