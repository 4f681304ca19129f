"""Kernel layouts: the 2-D `(in, out)` view of Dense and EinsumDense kernels.

A kernel's input axes are the ones its layer contracts; N:M groups, blocks,
per-channel centroids and low-rank factors are all taken over the matrix
whose rows are those axes, flattened, and whose columns are the rest.
"""

import math

import keras
import numpy as np


def matrix_shape(shape, input_axes):
    """Returns the `(in, out)` shape of the 2-D view of a kernel of `shape`."""
    rows = math.prod(shape[axis] for axis in input_axes)
    return rows, math.prod(shape) // max(rows, 1)


def to_matrix(weights, input_axes):
    """Returns the `(in, out)` view: input axes first, flattened, then the rest."""
    order = (*input_axes, *_output_axes(weights.ndim, input_axes))
    return np.transpose(weights, order).reshape(matrix_shape(weights.shape, input_axes))


def from_matrix(matrix, shape, input_axes):
    """Inverts `to_matrix` for a kernel of `shape`."""
    order = (*input_axes, *_output_axes(len(shape), input_axes))
    moved = matrix.reshape([shape[axis] for axis in order])
    return np.transpose(moved, np.argsort(order))


def owner_layers(model):
    """Maps `id(variable)` to the innermost layer that created it."""
    owners = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for variable in layer._trainable_variables + layer._non_trainable_variables:
            owners[id(variable)] = layer
    return owners


def input_axes(variable, layer):
    """Returns the contracted (input) axes of a kernel, as a tuple of ints.

    `Dense` kernels `(in, out)` contract axis 0. `EinsumDense` kernels
    contract the kernel letters that are missing from the output: axis 0 of a
    query kernel `(hidden, heads, head_dim)` in `"abc,cde->abde"`, axes
    `(0, 1)` of an attention output kernel `(heads, head_dim, hidden)` in
    `"abcd,cde->abe"`. Any other variable follows the Keras kernel layout
    `(..., in, out)`: every axis but the last is an input axis.
    """
    if isinstance(layer, keras.layers.EinsumDense) and _is_kernel(variable, layer):
        spec = layer.equation.split("->")
        kernel = spec[0].split(",")[1]
        if "." not in kernel and len(kernel) == len(variable.shape):
            return tuple(i for i, c in enumerate(kernel) if c not in spec[1])
    if isinstance(layer, keras.layers.Dense) and _is_kernel(variable, layer):
        return (0,)
    return tuple(range(len(variable.shape) - 1))


def _is_kernel(variable, layer):
    return getattr(layer, "_kernel", None) is variable


def _output_axes(ndim, input_axes):
    return tuple(axis for axis in range(ndim) if axis not in input_axes)
