"""Distillation under MirroredStrategy on two logical CPUs matches one device."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfaccel
from tfaccel.distillation import Seq2SeqDistiller
from tfaccel.models import Seq2SeqTransformer, SmoothedSparseCrossentropy
from tfaccel.pruning import _state

GLOBAL_BATCH = 8  # each replica takes 4 consecutive rows of a batch
STEPS = 3
FEATURES = [("decoder_layer_0", "decoder_layer_0")]
LAYERS = dict(num_encoder_layers=1, num_decoder_layers=1)  # fewer ops to trace
PRUNED = [".*feedforward.*kernel"]


def _data(padding):
    """Batches of `(inputs, targets, weights)`; row `r` has `padding(r)` pads."""
    rng = np.random.default_rng(0)
    rows = GLOBAL_BATCH * STEPS
    source = rng.integers(3, 64, (rows, 7)).astype("int32")
    target = rng.integers(3, 48, (rows, 6)).astype("int32")
    for row in range(rows):
        source[row, 7 - padding(row) :] = 0
        target[row, 6 - padding(row) :] = 0
    decoder = np.concatenate([np.ones((rows, 1), "int32"), target[:, :-1]], 1)
    weights = (target != 0).astype("float32")
    inputs = {"encoder_token_ids": source, "decoder_token_ids": decoder}
    data = tf.data.Dataset.from_tensor_slices((inputs, target, weights))
    return data.batch(GLOBAL_BATCH)


def _distill(strategy, data, alpha, features=(), prune=False):
    with strategy.scope():
        keras.utils.set_random_seed(1)
        teacher = Seq2SeqTransformer.from_preset("tiny", **LAYERS)
        # Narrower than the teacher: hidden-state KD learns a projection.
        student = Seq2SeqTransformer.from_preset("tiny", hidden_dim=8, **LAYERS)
        if prune:
            schedule = tfaccel.PolynomialDecay(0.0, 0.5, 0, end_step=2, frequency=1)
            tfaccel.prune(student, PRUNED, schedule)
        distiller = Seq2SeqDistiller(
            teacher, student, temperature=2.0, alpha=alpha, features=features
        )
        # SGD, not Adam: Adam would hide a wrongly scaled gradient.
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.5), loss=SmoothedSparseCrossentropy(0.0)
        )
    callbacks = tfaccel.callbacks(distiller)
    distiller.fit(data, shuffle=False, verbose=0, callbacks=callbacks)
    return distiller


def _numpy(variable):
    return keras.ops.convert_to_numpy(variable)


def _replicas(variable):
    assert isinstance(variable.value, tf.distribute.DistributedValues), variable.path
    first, second = (r.numpy() for r in variable.value.values)
    np.testing.assert_array_equal(first, second, err_msg=variable.path)
    return first


def _assert_same_training(mirrored, single):
    pairs = zip(mirrored.trainable_weights, single.trainable_weights, strict=True)
    for ours, theirs in pairs:
        assert ours.path == theirs.path
        # Only the summation order differs (measured: at most 1.2e-7, and
        # 4.6e-6 relative). atol: an entry close to 0 keeps that absolute
        # noise, large relative to itself (measured: 2e-8 beyond rtol).
        np.testing.assert_allclose(
            _replicas(ours), _numpy(theirs), rtol=1e-5, atol=1e-7, err_msg=ours.path
        )
    logs = mirrored.history.history, single.history.history
    assert logs[0].keys() == logs[1].keys()
    for name in logs[1]:
        np.testing.assert_allclose(logs[0][name], logs[1][name], rtol=1e-5)


@pytest.mark.large
def test_mirrored_distillation_matches_one_device(mirrored_strategy):
    # The hard-label loss is Keras's: each replica averages over its own
    # real tokens, so both halves of a batch hold the same number.
    data = _data(lambda row: row % 4)
    mirrored = _distill(mirrored_strategy, data, alpha=0.5, features=FEATURES)
    single = _distill(tf.distribute.get_strategy(), data, alpha=0.5, features=FEATURES)
    projection = mirrored.projections["decoder_layer_0"].kernel
    assert any(v is projection for v in mirrored.trainable_weights)
    _assert_same_training(mirrored, single)
    assert mirrored.history.history["distillation_loss"][0] > 0


@pytest.mark.large
def test_mirrored_distillation_of_a_pruned_student_matches_one_device(
    mirrored_strategy,
):
    # Token KD averages over the real tokens of the global batch, however
    # they are split: here replica 0 gets far fewer pads than replica 1.
    data = _data(lambda row: row % 8 // 2)
    mirrored = _distill(mirrored_strategy, data, alpha=0.0, prune=True)
    single = _distill(tf.distribute.get_strategy(), data, alpha=0.0, prune=True)
    ((_, state),) = _state.find_states(mirrored.student)
    ((_, reference),) = _state.find_states(single.student)
    assert len(state.targets) == 4
    for target, expected in zip(state.targets, reference.targets, strict=True):
        mask = _replicas(target.mask)
        np.testing.assert_array_equal(mask, _numpy(expected.mask))
        assert mask.mean() == 0.5
        np.testing.assert_array_equal(_replicas(target.variable)[mask == 0], 0)
    _assert_same_training(mirrored, single)
