"""Pruning under MirroredStrategy on two logical CPUs matches one device."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from pruning_checks import assert_exact_sparsity, matching, seq2seq_data, tiny_model

import tfaccel
from tfaccel.pruning import _state

TARGETS = ["re:.*(attention|feedforward).*kernel"]


def _train(strategy):
    with strategy.scope():
        model = tiny_model(seed=3)
        schedule = tfaccel.PolynomialDecay(0.0, 0.5, 0, end_step=4, frequency=2)
        tfaccel.prune(model, TARGETS, schedule)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    x, y = seq2seq_data(model, batch=48)
    model.fit(
        x, y, batch_size=8, shuffle=False, verbose=0, callbacks=tfaccel.callbacks(model)
    )  # 6 steps, updates at 0, 2, 4
    return model


@pytest.mark.large
def test_mirrored_strategy_matches_one_device(mirrored_strategy):
    mirrored = _train(mirrored_strategy)
    single = _train(tf.distribute.get_strategy())
    ((_, state),) = _state.find_states(mirrored)
    ((_, reference),) = _state.find_states(single)
    assert isinstance(state.targets[0].mask.value, tf.distribute.DistributedValues)
    for target, expected in zip(state.targets, reference.targets, strict=True):
        replicas = [r.numpy() for r in target.mask.value.values]
        assert len(replicas) == 2
        np.testing.assert_array_equal(replicas[0], replicas[1])
        np.testing.assert_array_equal(replicas[0], expected.mask.numpy())
        for weights in target.variable.value.values:
            np.testing.assert_array_equal(weights.numpy()[replicas[0] == 0], 0)
    assert_exact_sparsity(matching(mirrored, TARGETS), 0.5)
    for ours, theirs in zip(mirrored.weights, single.weights, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
    tfaccel.strip(mirrored)
    assert_exact_sparsity(matching(mirrored, TARGETS), 0.5)
