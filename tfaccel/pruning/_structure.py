"""Pruning structures: unstructured, N:M and block."""

import re

from tfaccel.core.kernels import matrix_shape
from tfaccel.errors import UserError

_N_M = re.compile(r"(\d+):(\d+)")


def parse_structure(structure, block):
    """Checks `structure` and `block` and returns them normalised.

    Args:
        structure: None or an `"N:M"` string with `0 < N < M`.
        block: None or two positive ints `(rows, cols)`.

    Returns:
        `(n_m, block)`: `n_m` is None or `(n, m)`; `block` None or a tuple.
    """
    if structure is not None and block is not None:
        raise UserError(
            "Give `structure` (N:M) or `block`, not both. "
            f"Received: structure={structure!r}, block={block!r}"
        )
    return _parse_n_m(structure), _parse_block(block)


def _parse_n_m(structure):
    if structure is None:
        return None
    match = _N_M.fullmatch(structure) if isinstance(structure, str) else None
    if match is None or not 0 < int(match[1]) < int(match[2]):
        raise UserError(
            "`structure` must be an 'N:M' string with 0 < N < M, such as '2:4'. "
            f"Received: structure={structure!r}"
        )
    return int(match[1]), int(match[2])


def _parse_block(block):
    if block is None:
        return None
    ok = isinstance(block, list | tuple) and len(block) == 2
    if not ok or any(isinstance(b, bool) or not isinstance(b, int) for b in block):
        ok = False
    if not ok or min(block) < 1:
        raise UserError(
            "`block` must be two positive ints (rows, cols) over the (in, out) "
            f"view of a kernel, such as (1, 4). Received: block={block!r}"
        )
    return tuple(block)


def structure_label(n_m, block):
    """Returns `"unstructured"`, `"2:4"` or `"block 1x4"`."""
    if n_m is not None:
        return f"{n_m[0]}:{n_m[1]}"
    if block is not None:
        return f"block {block[0]}x{block[1]}"
    return "unstructured"


def check_shape(path, shape, axes, n_m, block):
    """Raises `UserError` if N:M groups or blocks do not tile the kernel."""
    rows, cols = matrix_shape(shape, axes)
    if n_m is not None and rows % n_m[1]:
        raise UserError(
            f"N:M sparsity {n_m[0]}:{n_m[1]} needs the input dimension ({rows}) "
            f"of '{path}' to be a multiple of {n_m[1]}. "
            f"Received: path={path!r}, shape={tuple(shape)}"
        )
    if block is not None and (rows % block[0] or cols % block[1]):
        raise UserError(
            f"Block {block[0]}x{block[1]} does not tile the (in, out) = "
            f"({rows}, {cols}) view of '{path}'. "
            f"Received: path={path!r}, shape={tuple(shape)}, block={block}"
        )
