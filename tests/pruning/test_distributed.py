"""Pruning under MirroredStrategy on two logical CPUs matches one device."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from pruning_checks import assert_exact_sparsity, matching, seq2seq_data, tiny_model

import tfaccel
from tfaccel.core import kernels
from tfaccel.pruning import _masks, _state

TARGETS = ["re:.*(attention|feedforward).*kernel"]
# structure -> (schedule, what `prune` gets besides targets and schedule)
PRUNINGS = {
    # Masks update at steps 0, 2 and 4.
    "unstructured": (
        lambda: tfaccel.PolynomialDecay(0.0, 0.5, 0, end_step=4, frequency=2),
        {},
    ),
    # The 2:4 pattern is set once, at step 3, from weights trained for three
    # steps on either strategy, and kept for the last three.
    "2:4": (lambda: tfaccel.ConstantSparsity(0.5, begin_step=3), {"structure": "2:4"}),
}


def _train(strategy, pruning):
    schedule, kwargs = PRUNINGS[pruning]
    with strategy.scope():
        model = tiny_model(seed=3)
        tfaccel.prune(model, TARGETS, schedule(), **kwargs)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    x, y = seq2seq_data(model, batch=48)
    model.fit(
        x, y, batch_size=8, shuffle=False, verbose=0, callbacks=tfaccel.callbacks(model)
    )  # 6 steps
    return model


def _assert_two_of_four(mask, input_axes):
    view = kernels.to_matrix(mask, input_axes)  # (in, out)
    groups = view.reshape(view.shape[0] // 4, 4, view.shape[1])  # (in/4, 4, out)
    assert (groups.sum(axis=1) == 2).all()


@pytest.mark.large
@pytest.mark.parametrize("pruning", list(PRUNINGS))
def test_mirrored_strategy_matches_one_device(mirrored_strategy, pruning):
    mirrored = _train(mirrored_strategy, pruning)
    single = _train(tf.distribute.get_strategy(), pruning)
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
        if pruning == "2:4":
            assert target.updates == expected.updates == 1
            _assert_two_of_four(replicas[0], target.input_axes)
    if pruning == "2:4":
        # The pattern comes from the trained weights, not the initial ones.
        initial = matching(tiny_model(seed=3), TARGETS)
        assert any(
            not np.array_equal(
                target.mask.numpy(),
                _masks.n_m_mask(variable.numpy(), target.input_axes, 2, 4),
            )
            for target, variable in zip(state.targets, initial, strict=True)
        )
    assert_exact_sparsity(matching(mirrored, TARGETS), 0.5)
    for ours, theirs in zip(mirrored.weights, single.weights, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
    tfaccel.strip(mirrored)
    assert_exact_sparsity(matching(mirrored, TARGETS), 0.5)
