"""Counting what compression does to weights: zeros, distinct values, parameters.

Every figure that the summaries, the callbacks, the recipe runner, bench
and the CLI print about a model's weights comes from here, so that they
agree: a zero is an exact `0`, a fraction of an empty set is `0.0`, and a
variable shared by several layers counts once.

Each function takes NumPy arrays, Keras variables or backend tensors (a
variable's `shape` is read without copying its values where only the size
is needed).
"""

import math

import numpy as np
from keras import ops


def as_array(values):
    """Returns `values` (an array, a Keras variable or a tensor) as NumPy."""
    if isinstance(values, np.ndarray):
        return values
    return ops.convert_to_numpy(values)


def size(values):
    """Returns the number of entries of `values` from its shape; 0 for None.

    Example:

    ```python
    size(np.zeros((4, 2)))  # 8
    ```
    """
    return 0 if values is None else math.prod(values.shape)


def ratio(part, whole):
    """Returns `part / whole`, or `0.0` when `whole` is 0 (nothing measured)."""
    return part / max(whole, 1)


def zeros(values):
    """Returns the number of exact zeros in `values`, an int."""
    return int(np.sum(as_array(values) == 0))


def sparsity(values):
    """Returns the fraction of exact zeros in `values`; `0.0` when empty.

    Example:

    ```python
    sparsity(np.array([0.0, 1.0, 0.0, 2.0]))  # 0.5
    ```
    """
    array = as_array(values)
    return ratio(zeros(array), array.size)


def zeros_and_size(weights):
    """Returns `(zeros, entries)` summed over an iterable of weights.

    Pooling the counts, rather than averaging per-weight fractions, weights
    each weight by its size: `ratio(*zeros_and_size(weights))` is the
    sparsity of all of them together.
    """
    found = total = 0
    for values in weights:
        array = as_array(values)
        found += zeros(array)
        total += array.size
    return found, total


def total_sparsity(weights):
    """Returns the fraction of exact zeros over all of `weights`, pooled."""
    return ratio(*zeros_and_size(weights))


def distinct(values, nonzero=False):
    """Returns how many different values `values` holds.

    Args:
        values: an array, variable or tensor.
        nonzero: bool. Leave zero out: a sparsity-preserving clustered
            kernel with 16 clusters gives 16 rather than 17.

    Returns:
        An int.
    """
    array = as_array(values)
    if nonzero:
        array = array[array != 0]
    return int(np.unique(array).size)


def distinct_per_column(matrix):
    """Returns the number of distinct non-zero values in each column of `matrix`.

    Args:
        matrix: a 2-D array, such as a kernel's `(in, out)` view
            (`tfaccel.core.kernels.to_matrix`), whose columns are its output
            channels.

    Returns:
        A 1-D int array, one count per column.
    """
    ordered = np.sort(matrix, axis=0)
    changes = np.concatenate(
        [np.ones((1, matrix.shape[1]), bool), ordered[1:] != ordered[:-1]]
    )
    return np.sum(changes & (ordered != 0), axis=0)


def weight_row(path, values, **columns):
    """Returns a summary table's row for one weight.

    Args:
        path: the weight's path.
        values: its values (an array, variable or tensor).
        **columns: the table's other columns.

    Returns:
        A dict with `path`, `shape`, `size`, `zeros`, `sparsity`, `distinct`
        (different values, zero included: a clustered kernel shows its k)
        and `columns`.
    """
    array = as_array(values)
    found = zeros(array)
    return {
        "path": path,
        "shape": tuple(array.shape),
        "size": int(array.size),
        "zeros": found,
        "sparsity": ratio(found, array.size),
        "distinct": distinct(array),
        **columns,
    }


def total_row(rows, **blanks):
    """Returns the `"total"` row of a summary table of weights.

    Args:
        rows: the table's rows, each with `size` and `zeros`.
        **blanks: the table's other columns, with the total's value (None,
            or "" for a label).

    Returns:
        A dict with `path="total"`, `shape=None`, the summed `size` and
        `zeros`, the `sparsity` they give (weighted by size), and `blanks`.
    """
    size = sum(row["size"] for row in rows)
    zeros = sum(row["zeros"] for row in rows)
    total = {"path": "total", "shape": None, "size": size, "zeros": zeros}
    return {**total, "sparsity": ratio(zeros, size), **blanks}


def parameter_count(model_or_weights):
    """Returns the number of weights: every variable once.

    Trainable and non-trainable variables count, as in `model.count_params()`
    (a factorized kernel counts as its two factors), and a variable that
    appears twice (a shared layer, a tied embedding) counts once.

    Args:
        model_or_weights: a built Keras model or layer, or an iterable of
            variables.

    Returns:
        An int.
    """
    return sum(size(variable) for variable in _unique(model_or_weights))


def byte_count(model_or_weights):
    """Returns the bytes the weights take in their own dtypes, each once.

    Args:
        model_or_weights: a Keras model or layer, or an iterable of variables
            or arrays (anything with `shape` and `dtype`).

    Returns:
        An int: `size * itemsize` summed, e.g. 4 per float32 weight.
    """
    return sum(
        size(variable) * np.dtype(variable.dtype).itemsize
        for variable in _unique(model_or_weights)
    )


def _unique(model_or_weights):
    weights = getattr(model_or_weights, "weights", model_or_weights)
    return list({id(variable): variable for variable in weights}.values())
