"""Reusable contract checks for clustering, keras-hub style, on tiny models."""

import keras
import numpy as np
from technique_checks import (  # noqa: F401  (re-exported to the clustering tests)
    mlp_data,
    numpy,
    seq2seq_data,
    small_mlp,
    tiny_model,
)

from tfaccel.clustering import ClusterAssignments, _state
from tfaccel.core import kernels


def fit_mlp(model, callbacks=None, steps=8, optimizer="adam", **fit_kwargs):
    """Compiles (after clustering, so the optimizer sees the centroids) and fits."""
    x, y = mlp_data(steps)
    model.compile(optimizer, "mse")
    callbacks = [ClusterAssignments()] if callbacks is None else callbacks
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=callbacks)
    return model


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
