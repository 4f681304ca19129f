"""Reusable contract checks for pruning, keras-hub style, on tiny models."""

import re

import keras
import numpy as np
from technique_checks import (  # noqa: F401  (re-exported to the pruning tests)
    mlp_data,
    seq2seq_data,
    small_mlp,
    tiny_model,
)

import tfaccel
from tfaccel.pruning import _state


def compile_for_test(model, steps_per_execution=1, optimizer=None):
    """Compiles with Adam and a sparse cross-entropy on logits."""
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=steps_per_execution,
    )


def matching(model, targets):
    """Returns the trainable variables whose path fully matches a target."""
    patterns = [re.compile(t.removeprefix("re:")) for t in targets]
    return [
        v for v in model.trainable_weights if any(p.fullmatch(v.path) for p in patterns)
    ]


def zeros(variable):
    return int(np.sum(keras.ops.convert_to_numpy(variable) == 0))


def assert_exact_sparsity(variables, sparsity):
    """Asserts `round(sparsity * size)` exact zeros in every variable."""
    assert variables
    for variable in variables:
        size = int(np.prod(variable.shape))
        expected = int(np.round(sparsity * size))
        assert zeros(variable) == expected, (variable.path, zeros(variable), expected)


def run_pruning_test(model, fit, targets, schedule, sparsity, **prune_kwargs):
    """Prunes, fits with `tfaccel.callbacks`, strips, and checks the contract.

    Checks: `model.weights` keeps its length; every target ends with exactly
    `round(sparsity * size)` zeros; an untargeted variable that had no zeros
    has none after training; strip restores constraints and removes state.

    Args:
        model: a built Keras model (pruned in place).
        fit: function `(model, callbacks)` that trains it.
        targets: regexes for `tfaccel.prune`.
        schedule: a pruning schedule that ends at `sparsity`.
        sparsity: expected final sparsity of every target.
        **prune_kwargs: `structure` or `block`.

    Returns:
        The targeted variables.
    """
    weights = len(model.weights)
    constraints = {id(v): v.constraint for v in model.trainable_weights}
    targeted = matching(model, targets)
    ids = {id(v) for v in targeted}
    dense = [v for v in model.trainable_weights if id(v) not in ids and zeros(v) == 0]
    tfaccel.prune(model, targets, schedule, **prune_kwargs)
    assert len(model.weights) == weights
    fit(model, tfaccel.callbacks(model))
    tfaccel.strip(model)
    assert len(model.weights) == weights
    assert not _state.find_states(model)
    assert_exact_sparsity(targeted, sparsity)
    for variable in dense:
        assert zeros(variable) == 0, variable.path
    for variable in model.trainable_weights:
        assert variable.constraint is constraints[id(variable)], variable.path
    return targeted


def fit_mlp(model, callbacks, steps=8, epochs=1, steps_per_execution=1):
    """Fits `small_mlp` on random regression data, batch 4."""
    x, y = mlp_data(steps)
    model.compile("adam", "mse", steps_per_execution=steps_per_execution)
    model.fit(x, y, batch_size=4, epochs=epochs, verbose=0, callbacks=callbacks)
