"""The DenseNet: reference size, any input size, raw-pixel input, float32 output under mixed precision."""

from __future__ import annotations

import numpy as np
import pytest

from augmine.model.sources import build_densenet

pytestmark = pytest.mark.backend      # Keras layers, saving and mixed precision per backend

TINY = {"width": 8, "growth_rate": 4}


def test_default_model_has_about_8_9m_parameters_at_200_classes():
    model = build_densenet(200)
    count = model.count_params()
    assert abs(count - 8.9e6) / 8.9e6 < 0.10, count
    convs = [l for l in model.layers if l.__class__.__name__ == "Conv2D"]
    # stem + 5 blocks x 3 layers + 4 transitions
    assert len(convs) == 1 + 5 * 3 + 4
    assert sum(l.kernel_size == (3, 3) for l in convs) == 16
    assert sum(l.__class__.__name__ == "AveragePooling2D" for l in model.layers) == 4


@pytest.mark.parametrize("size", [16, 32, 64])
def test_one_tiny_model_accepts_16_32_and_64_px(size, tiny_model):
    x = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    from augmine.core.runtime import import_keras

    probs = import_keras().ops.convert_to_numpy(tiny_model(x, training=False))  # any backend
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_model():
    return build_densenet(10, **TINY)


def test_model_takes_raw_uint8_pixels_and_a_saved_copy_does_too(tmp_path):
    """Rescaling(1/255) is the first layer: uint8 images and the same values as float give the
    same output, and a reloaded .keras file keeps the scaling (saved models take raw images)."""
    import keras

    model = build_densenet(6, **TINY)
    first = model.layers[1]
    assert first.__class__.__name__ == "Rescaling" and first.scale == pytest.approx(1 / 255)
    assert model.layers[2].name == "stem_conv"
    raw = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    want = np.asarray(model.predict(raw.astype(np.float32), verbose=0))
    np.testing.assert_allclose(np.asarray(model.predict(raw, verbose=0)), want, rtol=1e-5,
                               atol=1e-6)
    scaled = np.asarray(model.predict(raw / 255.0, verbose=0))   # [0, 1] input: not the same
    assert np.abs(scaled - want).max() > 1e-4
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(again.predict(raw, verbose=0)), want, rtol=1e-5,
                               atol=1e-6)


def test_tiny_model_is_tiny_and_width_growth_change_it():
    small = build_densenet(10, **TINY).count_params()
    wider = build_densenet(10, width=8, growth_rate=8).count_params()
    assert small < 20_000
    assert wider > small


def test_dropout_and_weight_decay_options():
    model = build_densenet(5, dropout=0.3, weight_decay=1e-4, **TINY)
    assert any(l.name == "dropout" for l in model.layers)
    x = np.zeros((1, 16, 16, 3), np.float32)
    model(x)
    assert len(model.losses) == 1 + 5 * 3 + 4 + 1   # one L2 term per conv and the dense kernel
    assert not any(l.name == "dropout" for l in build_densenet(5, **TINY).layers)


def test_classifier_stays_float32_under_mixed_precision():
    import keras  # noqa: F811

    before = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_densenet(4, **TINY)
    finally:
        keras.mixed_precision.set_global_policy(before)
    conv = model.get_layer("stem_conv")
    assert conv.compute_dtype == "float16"
    out = model(np.zeros((1, 16, 16, 3), np.float32))
    import keras

    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert model.get_layer("logits").compute_dtype == "float32"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="num_classes"):
        build_densenet(1, **TINY)
    with pytest.raises(ValueError, match="compression"):
        build_densenet(3, compression=0.0, **TINY)
