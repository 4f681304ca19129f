"""QAT under MirroredStrategy on two logical CPUs tracks the ranges one device does."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from qat_checks import ALL, seq2seq_data, tiny_model

import tfaccel
from tfaccel.quantization import _state


def _train(strategy):
    with strategy.scope():
        model = tiny_model(seed=3)
        tfaccel.quantize_aware(model, targets=ALL)
        model.compile(
            optimizer=keras.optimizers.SGD(0.05),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    x, y = seq2seq_data(model, batch=48)
    model.fit(
        x, y, batch_size=8, shuffle=False, verbose=0, callbacks=tfaccel.callbacks(model)
    )
    return model


def _replicas(variable):
    first, second = (r.numpy() for r in variable.value.values)
    np.testing.assert_array_equal(first, second, err_msg=variable.path)
    return first


@pytest.mark.large
def test_mirrored_qat_ranges_match_one_device(mirrored_strategy):
    mirrored = _train(mirrored_strategy)
    single = _train(tf.distribute.get_strategy())
    ((_, state),) = _state.find_states(mirrored)
    ((_, reference),) = _state.find_states(single)
    checked = 0
    for (name, ours), (_, theirs) in zip(
        state.ranges(), reference.ranges(), strict=True
    ):
        if ours.frozen is not None:
            continue  # fixed ranges (softmax output)
        replicas = [r.numpy() for r in ours.low.value.values]
        assert len(replicas) == 2 and replicas[0] == replicas[1], name
        # Replicas gather their batch min/max: the global batch's, as on one
        # device. A min or max adds nothing up, so a range differs only as
        # far as the weights do (measured: not at all).
        np.testing.assert_allclose(ours.values(), theirs.values(), rtol=1e-5)
        checked += 1
    assert checked > 40
    for ours, theirs in zip(mirrored.weights, single.weights, strict=True):
        # The float weights differ by the summation order of the gradient
        # all-reduce only (measured: at most 6e-8). atol: a weight close to
        # 0 keeps that absolute noise, large relative to itself.
        np.testing.assert_allclose(
            _replicas(ours), theirs.numpy(), rtol=1e-5, atol=1e-7, err_msg=ours.path
        )
    tfaccel.strip(mirrored)
    for ours, theirs in zip(mirrored.weights, single.weights, strict=True):
        # Baking rounds onto the weight grid: within a grid step of the float
        # weights.
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=2e-3)
    tfaccel.strip(single)
    flips = 0
    for ours, theirs in zip(mirrored.weights, single.weights, strict=True):
        close = np.isclose(_replicas(ours), theirs.numpy(), rtol=1e-5, atol=1e-7)
        flips += int(np.sum(~close))
    # A float difference can still move a weight across a rounding boundary,
    # one grid step (about 2e-3) off; it takes a weight within ~1e-8 of a
    # boundary, so at most a couple (measured: none).
    assert flips <= 2
