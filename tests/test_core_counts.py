"""`tfaccel.core.counts`: zeros, distinct values, parameters and bytes."""

import keras
import numpy as np
import pytest

from tfaccel.compression import flops
from tfaccel.core import counts

# 3 exact zeros of 8; values 0, 1, 2, -1 and 0.5 (5 distinct, 4 non-zero).
KERNEL = np.array([[0.0, 1.0], [2.0, 0.0], [-1.0, 0.5], [0.0, 1.0]], np.float32)


def test_zeros_and_sparsity_of_an_array():
    assert counts.zeros(KERNEL) == 3
    assert counts.sparsity(KERNEL) == 3 / 8


def test_a_variable_is_measured_like_its_values():
    variable = keras.Variable(KERNEL)
    assert counts.zeros(variable) == 3
    assert counts.sparsity(variable) == 3 / 8
    assert counts.distinct(variable) == 5
    assert counts.size(variable) == 8


def test_negative_zero_counts_as_zero():
    assert counts.zeros(np.array([-0.0, 0.0, 1e-30])) == 2


def test_an_empty_array_has_no_sparsity():
    assert counts.sparsity(np.zeros((0, 4))) == 0.0
    assert counts.total_sparsity([]) == 0.0
    assert counts.ratio(0, 0) == 0.0


def test_pooled_sparsity_weights_each_array_by_its_size():
    small = np.zeros(2)  # 2 zeros of 2
    large = np.array([0.0, 1.0, 1.0, 1.0, 1.0, 1.0])  # 1 zero of 6
    assert counts.zeros_and_size([small, large]) == (3, 8)
    assert counts.total_sparsity([small, large]) == 3 / 8
    # Not the mean of the two fractions, (1 + 1/6) / 2.
    assert counts.total_sparsity([small, large]) != pytest.approx(7 / 12)


def test_a_clustered_kernel_has_its_cluster_count_of_distinct_values():
    rng = np.random.default_rng(0)
    centroids = np.array([-0.3, -0.1, 0.2, 0.4], np.float32)
    clustered = centroids[rng.integers(0, 4, size=(16, 8))]
    clustered[0, :4] = centroids  # every centroid appears at least once
    assert counts.distinct(clustered) == 4
    pruned = clustered.copy()
    pruned[1::2] = 0.0
    assert counts.distinct(pruned) == 5  # zero is one more value
    assert counts.distinct(pruned, nonzero=True) == 4


def test_distinct_per_column_leaves_zeros_out():
    view = np.array([[0.0, 1.0], [2.0, 1.0], [2.0, 3.0], [0.5, 0.0]])
    np.testing.assert_array_equal(counts.distinct_per_column(view), [2, 2])


def test_distinct_per_column_counts_each_output_channel():
    view = np.array([[1.0, 1.0, 0.0], [2.0, 1.0, 0.0], [3.0, 1.0, 0.0]])
    np.testing.assert_array_equal(counts.distinct_per_column(view), [3, 1, 0])


def _model():
    inputs = keras.Input((4,))
    shared = keras.layers.Dense(4)
    outputs = keras.layers.Dense(3)(shared(shared(inputs)))
    return keras.Model(inputs, outputs)


def test_parameter_count_counts_a_shared_layer_once():
    model = _model()
    # Shared Dense: 4 * 4 + 4; output Dense: 4 * 3 + 3.
    assert counts.parameter_count(model) == 20 + 15 == model.count_params()
    assert counts.parameter_count([*model.weights, *model.weights]) == 35
    assert flops.parameter_count(model) == 35  # the old name still works


def test_size_reads_the_shape():
    assert counts.size(None) == 0
    assert counts.size(keras.Variable(np.zeros((3, 5, 2)))) == 30


def test_byte_count_uses_each_dtype():
    weights = [np.zeros((4, 2), np.float32), np.zeros(3, np.float16)]
    assert counts.byte_count(weights) == 4 * 8 + 2 * 3
    assert counts.byte_count(_model()) == 4 * 35


def test_the_total_row_weights_sparsity_by_size_and_keeps_blank_columns():
    rows = [{"size": 8, "zeros": 4}, {"size": 24, "zeros": 0}]
    total = counts.total_row(rows, distinct=None, structure="")
    assert total == {
        "path": "total",
        "shape": None,
        "size": 32,
        "zeros": 4,
        "sparsity": 0.125,
        "distinct": None,
        "structure": "",
    }


def test_a_weight_row_counts_zeros_and_distinct_values_with_its_columns():
    values = np.array([[0.0, 1.5], [0.0, -2.0]], "float32")
    row = counts.weight_row("dense/kernel", values, structure="2:4")
    assert row == {
        "path": "dense/kernel",
        "shape": (2, 2),
        "size": 4,
        "zeros": 2,
        "sparsity": 0.5,
        "distinct": 3,
        "structure": "2:4",
    }
