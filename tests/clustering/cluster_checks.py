"""Reusable contract checks for clustering, keras-hub style, on tiny models."""

import keras
import numpy as np

from tfaccel.clustering import ClusterAssignments, _state
from tfaccel.core import kernels
from tfaccel.models import Seq2SeqTransformer


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


def mlp_data(steps=8, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch * steps, 16)).astype("float32")
    return x, rng.normal(size=(batch * steps, 8)).astype("float32")


def fit_mlp(model, callbacks=None, steps=8, optimizer="adam", **fit_kwargs):
    """Compiles (after clustering, so the optimizer sees the centroids) and fits."""
    x, y = mlp_data(steps)
    model.compile(optimizer, "mse")
    callbacks = [ClusterAssignments()] if callbacks is None else callbacks
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=callbacks)
    return model


def tiny_model(seed=0):
    """Returns the tiny reference encoder-decoder with seeded weights."""
    keras.utils.set_random_seed(seed)
    return Seq2SeqTransformer.from_preset("tiny")


def seq2seq_data(model, batch=16, length=8, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "encoder_token_ids": rng.integers(
            1, model.encoder_vocabulary_size, (batch, length)
        ).astype("int32"),
        "decoder_token_ids": rng.integers(
            1, model.decoder_vocabulary_size, (batch, length)
        ).astype("int32"),
    }
    y = rng.integers(1, model.decoder_vocabulary_size, (batch, length))
    return x, y.astype("int32")


def fit_seq2seq(model, steps=4, batch=4, callbacks=None):
    """Compiles and fits on random ids; default callbacks: `ClusterAssignments`."""
    x, y = seq2seq_data(model, batch=steps * batch)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    callbacks = [ClusterAssignments()] if callbacks is None else callbacks
    model.fit(x, y, batch_size=batch, shuffle=False, verbose=0, callbacks=callbacks)


def records(model):
    """Returns every `ClusteredWeight` of `model`, by variable path."""
    return {r.variable.path: r for _, s in _state.find_states(model) for r in s.weights}


def numpy(value):
    return keras.ops.convert_to_numpy(value)


def distinct_nonzero(values):
    return np.unique(values[values != 0]).size


def assert_clustered(model, variables, num_clusters, per_channel=False):
    """Asserts exactly `num_clusters` distinct non-zero values per kernel/channel."""
    assert variables
    owners = kernels.owner_layers(model)
    for variable in variables:
        values = numpy(variable)
        if not per_channel:
            assert distinct_nonzero(values) == num_clusters, variable.path
            continue
        axes = kernels.input_axes(variable, owners[id(variable)])
        view = kernels.to_matrix(values, axes)  # (in, out)
        counts = [distinct_nonzero(view[:, j]) for j in range(view.shape[1])]
        assert counts == [num_clusters] * view.shape[1], (variable.path, counts)


def assert_saves_with_optimizer(model, x, y, path, batch_size=4):
    """`model.save` of a compiled, stripped model loads and trains on alike.

    The reloaded model gives the same outputs and optimizer state, and one
    more epoch of both leaves the same weights.
    """
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(numpy(loaded(x)), numpy(model(x)), rtol=1e-6, atol=1e-6)
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for ours, theirs in zip(
        model.optimizer.variables, loaded.optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(numpy(theirs), numpy(ours))
    for each in (model, loaded):
        each.fit(x, y, batch_size=batch_size, shuffle=False, verbose=0)
    for ours, theirs in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_allclose(numpy(theirs), numpy(ours), rtol=1e-5, atol=1e-6)
    return loaded
