"""Tests for N:M and block sparsity on the tiny reference encoder-decoder."""

import keras
import numpy as np
import pytest
from pruning_checks import (
    compile_for_test,
    fit_mlp,
    run_pruning_test,
    seq2seq_data,
    small_mlp,
    tiny_model,
)

import tfaccel
from tfaccel.core import kernels
from tfaccel.errors import UserError

TARGETS = ["re:.*(attention|feedforward).*kernel"]
# (path, input axes): Dense (in, out); query (hidden, heads, head_dim);
# attention_output (heads, head_dim, hidden).
KERNELS = [
    ("encoder_layer_0/feedforward_intermediate_dense/kernel", (0,)),
    ("decoder_layer_1/feedforward_output_dense/kernel", (0,)),
    ("encoder_layer_1/self_attention_layer/query/kernel", (0,)),
    ("decoder_layer_0/cross_attention/key/kernel", (0,)),
    ("decoder_layer_0/self_attention/attention_output/kernel", (0, 1)),
    ("encoder_layer_0/self_attention_layer/attention_output/kernel", (0, 1)),
]


def _fit(model, callbacks, steps=4):
    x, y = seq2seq_data(model, batch=4 * steps)
    compile_for_test(model)
    model.fit(x, y, batch_size=4, verbose=0, shuffle=False, callbacks=callbacks)


def _by_path(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_weights}


def test_2_4_keeps_two_per_group_of_four_along_the_input_axis():
    model = tiny_model()
    # The schedule's sparsity does not matter for N:M; it sets the pattern at
    # its first update (step 2) and keeps it.
    schedule = tfaccel.PolynomialDecay(0.0, 0.8, begin_step=2, end_step=3, frequency=1)
    run_pruning_test(model, _fit, TARGETS, schedule, 0.5, structure="2:4")
    weights = _by_path(model)
    for path, axes in KERNELS:
        view = kernels.to_matrix(weights[path], axes)  # (in, out)
        groups = view.reshape(view.shape[0] // 4, 4, view.shape[1])
        assert ((groups != 0).sum(axis=1) == 2).all(), path
    rows = tfaccel.summary(model, targets=TARGETS, structure="2:4", print_fn=print)
    assert {row["structure"] for row in rows[:-1]} == {"2:4"}


def test_n_m_sparsity_is_reported_as_one_minus_n_over_m():
    model = small_mlp()
    tfaccel.prune(model, [".*kernel"], tfaccel.ConstantSparsity(0.1), structure="1:4")
    fit_mlp(model, tfaccel.callbacks(model), steps=1)
    rows = tfaccel.summary(model, print_fn=lambda text: None)
    assert [row["sparsity"] for row in rows] == [0.75, 0.75, 0.75]
    assert [row["structure"] for row in rows] == ["1:4", "1:4", ""]


def test_n_m_that_does_not_divide_the_input_dimension_names_the_variable():
    model = tiny_model()
    with pytest.raises(UserError) as info:
        tfaccel.prune(model, TARGETS, tfaccel.ConstantSparsity(0.5), structure="2:3")
    message = str(info.value)
    assert "input dimension (16)" in message and "multiple of 3" in message
    assert "path='encoder_layer_0/self_attention_layer/query/kernel'" in message
    assert message.endswith("shape=(16, 2, 8)")


def test_block_1x4_zeroes_exact_number_of_whole_blocks():
    model = tiny_model()
    schedule = tfaccel.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=3, frequency=1)
    run_pruning_test(model, _fit, TARGETS, schedule, 0.5, block=(1, 4))
    weights = _by_path(model)
    for path, axes in KERNELS:
        view = kernels.to_matrix(weights[path], axes)  # (in, out)
        tiles = (view != 0).reshape(view.shape[0], view.shape[1] // 4, 4).sum(axis=2)
        assert set(np.unique(tiles)) == {0, 4}, path
        assert int(np.sum(tiles == 0)) == int(np.round(0.5 * tiles.size)), path


def test_block_that_does_not_tile_raises():
    with pytest.raises(UserError, match="does not tile.*shape=\\(16, 2, 8\\)"):
        tfaccel.prune(
            tiny_model(), TARGETS, tfaccel.ConstantSparsity(0.5), block=(3, 1)
        )
