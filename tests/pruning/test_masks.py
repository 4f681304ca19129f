"""Tests for the NumPy mask functions and the input axes of kernels."""

import keras
import numpy as np
import pytest

from tfaccel.core import kernels
from tfaccel.pruning import _masks, _structure


def _weights(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.25, 0.5, 0.875, 0.99])
@pytest.mark.parametrize("shape", [(16, 32), (16, 2, 8), (7, 3)])
def test_unstructured_zeroes_exact_count_of_smallest(shape, sparsity):
    weights = _weights(shape)
    mask = _masks.unstructured_mask(weights, sparsity)
    pruned = int(np.round(sparsity * weights.size))
    assert mask.shape == shape and int(np.sum(mask == 0)) == pruned
    if 0 < pruned < weights.size:
        assert np.abs(weights[mask == 0]).max() <= np.abs(weights[mask == 1]).min()


def test_unstructured_ties_break_by_position():
    weights = np.array([[1.0, -1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 3.0]], "float32")
    mask = _masks.unstructured_mask(weights, 0.5)
    expected = np.array([[0, 0, 1, 1], [1, 0, 0, 1]], "float32")
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize(
    "shape, axes",
    [((16, 32), (0,)), ((16, 2, 8), (0,)), ((2, 8, 16), (0, 1))],
)
def test_n_m_keeps_n_largest_per_group_along_input_axes(shape, axes):
    weights = _weights(shape)
    mask = _masks.n_m_mask(weights, axes, 2, 4)
    view = kernels.to_matrix(mask, axes)  # (in, out)
    groups = view.reshape(view.shape[0] // 4, 4, view.shape[1])
    assert (groups.sum(axis=1) == 2).all()
    kept = kernels.to_matrix(np.abs(weights) * mask, axes).reshape(groups.shape)
    dropped = kernels.to_matrix(np.abs(weights) * (1 - mask), axes)
    assert (kept.max(axis=1) > 0).all()
    assert (
        kept.min(axis=1, where=groups > 0, initial=np.inf)
        >= dropped.reshape(groups.shape).max(axis=1)
    ).all()


def test_n_m_groups_run_along_the_input_axis_not_the_output_axis():
    weights = np.arange(1, 9, dtype="float32").reshape(4, 2)  # (in=4, out=2)
    mask = _masks.n_m_mask(weights, (0,), 1, 4)
    np.testing.assert_array_equal(mask, [[0, 0], [0, 0], [0, 0], [1, 1]])


def test_matrix_view_round_trips():
    weights = _weights((2, 8, 16))
    view = kernels.to_matrix(weights, (0, 1))
    assert view.shape == (16, 16)
    np.testing.assert_array_equal(view[:, 3], weights[:, :, 3].ravel())
    np.testing.assert_array_equal(
        kernels.from_matrix(view, (2, 8, 16), (0, 1)), weights
    )
    query = _weights((16, 2, 8))
    assert kernels.to_matrix(query, (0,)).shape == (16, 16)
    np.testing.assert_array_equal(
        kernels.from_matrix(kernels.to_matrix(query, (0,)), query.shape, (0,)), query
    )


@pytest.mark.parametrize("block", [(1, 4), (2, 2), (4, 1)])
@pytest.mark.parametrize("sparsity", [0.3, 0.5])
def test_block_zeroes_exact_count_of_whole_blocks(block, sparsity):
    weights = _weights((16, 2, 8))
    mask = _masks.block_mask(weights, (0,), block, sparsity)
    view = kernels.to_matrix(mask, (0,))  # (16, 16)
    rows, cols = block
    tiles = view.reshape(16 // rows, rows, 16 // cols, cols)
    per_block = tiles.sum(axis=(1, 3))
    assert set(np.unique(per_block)) <= {0, rows * cols}  # whole blocks
    n_blocks = per_block.size
    assert int(np.sum(per_block == 0)) == int(np.round(sparsity * n_blocks))


def test_block_scores_by_mean_magnitude():
    weights = np.array([[9.0, 0.1, 1.0, 1.0], [0.1, 0.1, 1.0, 1.0]], "float32")
    mask = _masks.block_mask(weights, (0,), (2, 2), 0.5)
    np.testing.assert_array_equal(mask, [[1, 1, 0, 0], [1, 1, 0, 0]])


def test_input_axes_of_keras_layers():
    query = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 2, 8))
    query.build((None, None, 16))
    output = keras.layers.EinsumDense("abcd,cde->abe", output_shape=(None, 16))
    output.build((None, None, 2, 8))
    dense = keras.layers.Dense(32)
    dense.build((None, 16))
    conv = keras.layers.Conv1D(8, 3)
    conv.build((None, 10, 4))
    assert kernels.input_axes(query.kernel, query) == (0,)
    assert kernels.input_axes(output.kernel, output) == (0, 1)
    assert kernels.input_axes(dense.kernel, dense) == (0,)
    assert kernels.input_axes(conv.kernel, conv) == (0, 1)  # (k, in, out)


@pytest.mark.parametrize(
    "structure, block, words",
    [
        ("3:2", None, "0 < N < M"),
        ("0:4", None, "0 < N < M"),
        ("2-4", None, "'N:M'"),
        (None, (0, 4), "two positive ints"),
        (None, (1, 2, 3), "two positive ints"),
        ("2:4", (1, 4), "not both"),
    ],
)
def test_bad_structures_raise(structure, block, words):
    with pytest.raises(ValueError, match=words):
        _structure.parse_structure(structure, block)
