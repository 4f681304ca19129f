"""Tiny models, data and one contract check shared by every technique's tests.

In the style of keras-hub's `TestCase.run_layer_test`: `run_technique_test`
applies a technique to a model, trains it with `tfaccel.callbacks`, strips
it, and checks what every technique promises; each technique's own
`*_checks.py` adds only the checks that are its own (exact sparsity,
distinct values, int8 grids). `tests/` is on `sys.path` (pytest puts the
folder of `conftest.py` there), so any test imports this module by name.
"""

import keras
import numpy as np

import tfaccel
from tfaccel.core import registry
from tfaccel.models import Seq2SeqTransformer


def numpy(value):
    """Returns `value` (a tensor or variable) as a NumPy array."""
    return keras.ops.convert_to_numpy(value)


def tiny_model(seed=0, build=False, **overrides):
    """Returns the tiny reference encoder-decoder with seeded weights.

    Args:
        seed: the Keras random seed the weights are drawn with.
        build: True to run it once on a batch of 2, so its weights exist.
        **overrides: arguments of `Seq2SeqTransformer.from_preset`.
    """
    keras.utils.set_random_seed(seed)
    model = Seq2SeqTransformer.from_preset("tiny", **overrides)
    if build:
        x, _ = seq2seq_data(model, batch=2)
        model(x)
    return model


def seq2seq_data(model, batch=32, length=8, seed=0, low=1):
    """Returns random `(x, y)` token ids for `model`, with no padding.

    Args:
        low: the smallest id drawn (1 leaves out padding only; 3 also the
            BOS and EOS ids).
    """
    rng = np.random.default_rng(seed)
    x = {
        "encoder_token_ids": rng.integers(
            low, model.encoder_vocabulary_size, (batch, length)
        ).astype("int32"),
        "decoder_token_ids": rng.integers(
            low, model.decoder_vocabulary_size, (batch, length)
        ).astype("int32"),
    }
    y = rng.integers(low, model.decoder_vocabulary_size, (batch, length))
    return x, y.astype("int32")


def small_mlp(seed=0):
    """Returns a built MLP: `mlp/hidden/kernel` (16, 32), `mlp/out/kernel` (32, 8)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(8, name="out"),
        ],
        name="mlp",
    )


def functional_mlp(seed=0):
    """Returns the same MLP as `small_mlp`, written with the functional API."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16,))
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(8, name="out")(hidden), name="mlp")


def mlp_data(steps=8, batch=4, seed=0):
    """Returns random regression data `(x, y)` for the MLPs: `steps` batches."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch * steps, 16)).astype("float32")
    return x, rng.normal(size=(batch * steps, 8)).astype("float32")


def tiny_bart(seed=0):
    """Returns a built one-layer keras-hub `BartSeq2SeqLM`, from a config."""
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BartBackbone(
        vocabulary_size=50,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        dropout=0.0,
        max_sequence_length=16,
    )
    return keras_hub.models.BartSeq2SeqLM(backbone=backbone, preprocessor=None)


def bart_data(batch=8, length=8, seed=0):
    """Returns random `(x, y)` for `tiny_bart`, with no padding."""
    rng = np.random.default_rng(seed)
    x = {
        name: rng.integers(1, 50, (batch, length)).astype("int32")
        for name in ("encoder_token_ids", "decoder_token_ids")
    }
    x |= {
        name: np.ones((batch, length), "int32")
        for name in ("encoder_padding_mask", "decoder_padding_mask")
    }
    return x, rng.integers(1, 50, (batch, length)).astype("int32")


def run_technique_test(model, apply, fit, x, atol=1e-5):
    """Applies a technique, trains, strips, and checks the shared contract.

    Every technique promises: `model` is changed in place and returned,
    and carries state that trains; `tfaccel.callbacks(model)` drives its
    training; `tfaccel.strip` leaves the same variables (by path) as before
    it was applied, no state that still trains, and the outputs the trained
    model gave.

    Args:
        model: a built Keras model.
        apply: function `model -> model`, e.g. `lambda m: tfaccel.prune(...)`.
        fit: function `(model, callbacks)` that compiles and trains it.
        x: inputs of `model` to compare outputs on.
        atol: the largest output difference that strip may make.

    Returns:
        The stripped model, to check what is the technique's own.
    """
    paths = [v.path for v in model.weights]
    assert apply(model) is model
    assert _training(model)
    fit(model, tfaccel.callbacks(model))
    trained = numpy(model(x))
    assert np.all(np.isfinite(trained))
    assert tfaccel.strip(model) is model
    assert not _training(model)
    assert [v.path for v in model.weights] == paths
    stripped = numpy(model(x))
    np.testing.assert_allclose(stripped, trained, rtol=0, atol=atol)
    return model


def _training(model):
    return [t.name for t in registry.techniques() if t.is_training(model)]
