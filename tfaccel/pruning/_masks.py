"""Magnitude masks on the host, in NumPy: unstructured, N:M and block.

Every function takes weights as a NumPy array and returns a float mask of the
same shape, 1 to keep and 0 to prune. Ties break by position (stable sorts),
so every replica and every run computes the same mask.
"""

import numpy as np

from tfaccel.core.kernels import from_matrix, to_matrix


def count_to_prune(sparsity, size):
    """Returns how many of `size` items to prune: `round(sparsity * size)`.

    Rounds half to even, like `round()` and `tf.math.round`.
    """
    return int(np.round(float(sparsity) * size))


def unstructured_mask(weights, sparsity):
    """Zeroes the `round(sparsity * size)` smallest-|w| weights of the array.

    Args:
        weights: NumPy array of any shape.
        sparsity: float in [0, 1).

    Returns:
        A mask with exactly `round(sparsity * weights.size)` zeros.
    """
    flat = np.abs(weights).ravel()
    order = np.argsort(flat, kind="stable")
    mask = np.ones(flat.size, dtype=weights.dtype)
    mask[order[: count_to_prune(sparsity, flat.size)]] = 0
    return mask.reshape(weights.shape)


def n_m_mask(weights, input_axes, n, m):
    """Keeps the `n` largest |w| in each run of `m` weights along the input axis.

    This is the 2:4 pattern that sparse tensor cores run (Mishra et al.,
    "Accelerating Sparse Deep Neural Networks", 2021,
    https://arxiv.org/abs/2104.08378): the groups run along the contracted
    (input) dimension that feeds one output unit.

    Args:
        weights: NumPy array.
        input_axes: tuple of ints, the contracted axes of `weights`.
        n: int. Weights kept per group.
        m: int. Group size; must divide the flattened input dimension.

    Returns:
        A mask with exactly `m - n` zeros in every group.
    """
    view = to_matrix(np.abs(weights), input_axes)  # (in, out)
    groups = view.reshape(view.shape[0] // m, m, view.shape[1])  # (in/m, m, out)
    order = np.argsort(-groups, axis=1, kind="stable")
    rank = np.argsort(order, axis=1, kind="stable")  # 0 = largest in its group
    mask = (rank < n).astype(weights.dtype).reshape(view.shape)
    return from_matrix(mask, weights.shape, input_axes)


def block_mask(weights, input_axes, block, sparsity):
    """Zeroes the `round(sparsity * n_blocks)` blocks of smallest mean |w|.

    Blocks tile the 2-D `(in, out)` view of the weights, as in tfmot's
    `block_size` (Narang et al., "Block-Sparse Recurrent Neural Networks",
    2017, https://arxiv.org/abs/1711.02782).

    Args:
        weights: NumPy array.
        input_axes: tuple of ints, the contracted axes of `weights`.
        block: `(rows, cols)` over the `(in, out)` view; each must divide.
        sparsity: float in [0, 1).

    Returns:
        A mask made of whole blocks of zeros and ones.
    """
    view = to_matrix(np.abs(weights), input_axes)  # (in, out)
    rows, cols = block
    grid = (view.shape[0] // rows, view.shape[1] // cols)
    scores = view.reshape(grid[0], rows, grid[1], cols).mean(axis=(1, 3))
    keep = unstructured_mask(scores, sparsity)  # (in/rows, out/cols)
    mask = np.repeat(np.repeat(keep, rows, axis=0), cols, axis=1)
    return from_matrix(mask.astype(weights.dtype), weights.shape, input_axes)
