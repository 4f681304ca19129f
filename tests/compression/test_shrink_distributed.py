"""`shrink`, then fine-tuning under MirroredStrategy on two CPUs, matches one device."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfaccel.compression import shrink
from tfaccel.models import Seq2SeqTransformer

GLOBAL_BATCH = 8  # each replica takes 4 rows of a batch
STEPS = 4


def _data(seed=0, rows=GLOBAL_BATCH * STEPS, length=6):
    rng = np.random.default_rng(seed)
    x = {
        "encoder_token_ids": rng.integers(3, 64, (rows, length)).astype("int32"),
        "decoder_token_ids": rng.integers(3, 48, (rows, length)).astype("int32"),
    }
    return x, rng.integers(3, 48, (rows, length)).astype("int32")


def _shrink_and_train(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(2)
        # Four heads and three encoder layers, so each kind can shrink.
        model = Seq2SeqTransformer.from_preset(
            "tiny", num_heads=4, num_encoder_layers=3
        )
        model(_data(rows=1)[0])
    # Outside the scope, as users call it: the smaller model still goes
    # under the original's strategy. Activation importance runs the model.
    small = shrink(
        model,
        heads=2,
        ffn=0.5,
        layers={"encoder": 1, "decoder": 1},
        importance="activation",
        calibration=_data(seed=1, rows=4)[0],
    )
    shrunk = [keras.ops.convert_to_numpy(w) for w in small.weights]
    with strategy.scope():
        small.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    x, y = _data()
    small.fit(x, y, batch_size=GLOBAL_BATCH, shuffle=False, verbose=0)
    return small, shrunk


@pytest.mark.large
def test_shrink_then_fine_tune_under_mirrored_strategy_matches_one_device(
    mirrored_strategy,
):
    mirrored, mirrored_shrunk = _shrink_and_train(mirrored_strategy)
    single, single_shrunk = _shrink_and_train(tf.distribute.get_strategy())
    assert mirrored.distribute_strategy is mirrored_strategy
    assert (mirrored.num_heads, mirrored.intermediate_dim) == (2, 16)
    assert len(mirrored.encoder_layers) == len(mirrored.decoder_layers) == 1
    # The same heads, neurons and layers are kept, copied exactly.
    for ours, theirs, variable in zip(
        mirrored_shrunk, single_shrunk, single.weights, strict=True
    ):
        assert ours.shape == theirs.shape == tuple(variable.shape), variable.path
        np.testing.assert_array_equal(ours, theirs, err_msg=variable.path)
    assert int(mirrored.optimizer.iterations.numpy()) == STEPS
    for ours, theirs in zip(mirrored.weights, single.weights, strict=True):
        assert ours.path == theirs.path
        assert isinstance(ours.value, tf.distribute.DistributedValues), ours.path
        first, second = (r.numpy() for r in ours.value.values)
        np.testing.assert_array_equal(first, second, err_msg=ours.path)
        # Only the summation order differs (measured: at most 3e-8). atol:
        # an entry close to 0 keeps that absolute noise, large relative to it.
        np.testing.assert_allclose(
            first, theirs.numpy(), rtol=1e-5, atol=1e-7, err_msg=ours.path
        )
    changed = [
        not np.array_equal(before, after.numpy())
        for before, after in zip(single_shrunk, single.weights, strict=True)
    ]
    assert sum(changed) > len(changed) // 2  # fine-tuning moved the weights
