"""Truncated-SVD factors of a kernel, and the two variables that hold them.

A kernel is factorized in its 2-D `(in, out)` view: the contracted (input)
axes flattened, then the output axes (as `tfaccel.pruning` views kernels).
`kernel_a` keeps the input axes and adds the rank, `(*in_axes, rank)`;
`kernel_b` starts with the rank and keeps the output axes,
`(rank, *out_axes)`. A query kernel `(hidden, heads, head_dim)` becomes
`(hidden, rank)` and `(rank, heads, head_dim)`.
"""

import math
import string

import keras
import numpy as np

from tfaccel._tracking import unlocked
from tfaccel.core.kernels import to_matrix
from tfaccel.errors import UserError

# Slack on the energy share: float32 kernels carry singular values with
# ~1e-7 relative error, which must not push the chosen rank one higher.
_ENERGY_SLACK = 1e-6


def kernel_axes(layer):
    """Returns `(in_axes, out_axes)` of a Dense or EinsumDense kernel.

    Raises:
        UserError: an EinsumDense kernel with an axis that is in both its
            input and its output (a batched axis, not a matrix axis), or in
            neither, or an equation with `...` in the kernel.
    """
    if not isinstance(layer, keras.layers.EinsumDense):
        return (0,), (1,)
    inputs, kernel, output = _split(layer.equation)
    for letter in kernel:
        if (letter in inputs) == (letter in output):
            raise UserError(
                f"Cannot factorize the kernel of '{layer.path}': in the equation "
                f"'{layer.equation}' its axis '{letter}' must be in the input "
                "or in the output, not both or neither. Leave it out of "
                f"`targets`. Received: equation={layer.equation!r}"
            )
    in_axes = tuple(i for i, c in enumerate(kernel) if c not in output)
    return in_axes, tuple(i for i, c in enumerate(kernel) if c in output)


def matrix_shape(shape, in_axes):
    """Returns `(in, out)`: the kernel's 2-D view."""
    rows = math.prod(shape[axis] for axis in in_axes)
    return rows, math.prod(shape) // rows


def factor_shapes(shape, in_axes, out_axes, rank):
    """Returns the shapes of `kernel_a` and `kernel_b` for a kernel of `shape`."""
    a_shape = (*(shape[axis] for axis in in_axes), rank)
    return a_shape, (rank, *(shape[axis] for axis in out_axes))


def singular_values(values, in_axes):
    """Returns `(u, s, vt)`, the SVD of the `(in, out)` view, in float64."""
    view = to_matrix(np.asarray(values, np.float64), in_axes)  # (in, out)
    return np.linalg.svd(view, full_matrices=False)


def energy_rank(s, energy):
    """Returns the smallest rank whose singular values keep `energy` of the total.

    The share of rank r is `sum(s[:r]**2) / sum(s**2)`: the part of the
    squared Frobenius norm that the rank-r truncation keeps (Eckart-Young).
    An all-zero kernel gets rank 1.
    """
    squares = np.square(s)
    total = squares.sum()
    if total == 0:
        return 1
    share = np.cumsum(squares) / total
    return min(int(np.searchsorted(share, energy - _ENERGY_SLACK)) + 1, len(s))


def kept_energy(s, rank):
    """Returns `sum(s[:rank]**2) / sum(s**2)` (1.0 for an all-zero kernel)."""
    squares = np.square(s)
    total = squares.sum()
    return 1.0 if total == 0 else float(squares[:rank].sum() / total)


def split(u, s, vt, rank, shape, in_axes, out_axes):
    """Returns the factors `(A, B)`, `A = U_r sqrt(S_r)`, `B = sqrt(S_r) V_r^T`.

    Splitting the singular values evenly gives both factors the same scale,
    so both train at a similar pace.
    """
    root = np.sqrt(s[:rank])
    a = u[:, :rank] * root  # (in, rank)
    b = root[:, None] * vt[:rank]  # (rank, out)
    a_shape, b_shape = factor_shapes(shape, in_axes, out_axes, rank)
    return a.reshape(a_shape), b.reshape(b_shape)


def equations(equation, rank_letter=None):
    """Returns the einsums of a factorized EinsumDense.

    Returns:
        `(first, second, product)`: `x @ A` (input to rank), `(x A) @ B`
        (rank to the output) and `A @ B` (the kernel, for code that reads
        it). For `"abc,cde->abde"` they are `"abc,cz->abz"`, `"abz,zde->abde"`
        and `"cz,zde->cde"`.
    """
    inputs, kernel, output = _split(equation)
    r = rank_letter or next(
        c for c in reversed(string.ascii_letters) if c not in equation
    )
    in_letters = "".join(c for c in kernel if c not in output)
    out_letters = "".join(c for c in kernel if c in output)
    # Input letters the output keeps (batch, sequence, `...`); the others
    # are contracted with the kernel, or summed away as in the original.
    kept = "".join(c for c in inputs if c == "." or c in output)
    return (
        f"{inputs},{in_letters}{r}->{kept}{r}",
        f"{kept}{r},{r}{out_letters}->{output}",
        f"{in_letters}{r},{r}{out_letters}->{kernel}",
    )


def _split(equation):
    sides = equation.replace(" ", "").split("->")
    operands = sides[0].split(",")
    if len(sides) != 2 or len(operands) != 2 or "." in operands[1]:
        raise UserError(
            "Only EinsumDense equations 'input,kernel->output' with no '...' in "
            f"the kernel can be factorized. Received: equation={equation!r}"
        )
    return operands[0], operands[1], sides[1]


def add_factors(layer, rank):
    """Replaces `layer`'s kernel variable by `kernel_a` and `kernel_b`.

    The kernel is untracked, so it leaves `layer.weights`; the factors are
    new variables with the kernel's dtype and trainable flag, randomly
    initialized (`factorize` then assigns the SVD factors; loading assigns
    the saved ones). The caller swaps the layer's class.

    Returns:
        `(kernel_a, kernel_b)`.
    """
    kernel = layer._kernel
    in_axes, out_axes = kernel_axes(layer)
    a_shape, b_shape = factor_shapes(tuple(kernel.shape), in_axes, out_axes, rank)
    with unlocked(layer):
        layer._untrack_variable(kernel)
        layer._kernel = None
        layer.kernel_a = _factor(layer, "kernel_a", a_shape, kernel)
        layer.kernel_b = _factor(layer, "kernel_b", b_shape, kernel)
    layer.rank = rank
    return layer.kernel_a, layer.kernel_b


def _factor(layer, name, shape, kernel):
    return layer.add_weight(
        name=name,
        shape=shape,
        initializer="glorot_uniform",
        dtype=kernel.dtype,
        trainable=kernel.trainable,
    )


def check_rank(rank):
    """Raises `ValueError` unless `rank` is an int >= 1."""
    if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or rank < 1:
        raise ValueError(f"`rank` must be an int >= 1. Received: rank={rank!r}")
