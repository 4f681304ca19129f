"""`clustering_summary`: a per-weight table of shared values and sparsity."""

import rich.console
import rich.table
from keras import ops

from tfaccel._tables import print_table
from tfaccel.clustering import _state
from tfaccel.core import counts
from tfaccel.core.kernels import input_axes, owner_layers, to_matrix
from tfaccel.core.targets import match_variables
from tfaccel.errors import UserError


def clustering_summary(model, targets=None, print_fn=None):
    """Prints and returns the distinct values and sparsity of clustered weights.

    Everything is measured from the weights the model computes with: on a
    clustered model, the clustered weights its layers read; on a stripped
    (or any) model, the variables that `targets` (regexes, as for
    `tfaccel.cluster`) name. Zeros are counted apart: a sparsity-preserving
    kernel with 16 clusters has 16 distinct values plus 0.

    Args:
        model: a Keras model.
        targets: None for a clustered model's own weights, or a list of
            regexes.
        print_fn: None to print with rich, or a function given the table text.

    Returns:
        A list of dicts with keys `path`, `shape`, `size`, `clusters` (the
        `num_clusters` asked for, or None when measured from `targets`),
        `per_channel` (likewise), `distinct` (distinct non-zero values in
        the whole weight), `distinct_per_channel` (the most distinct non-zero
        values in one output channel), `zeros` and `sparsity`: one per
        weight, then a `"total"` row whose sparsity is weighted by size.

    Example:

    ```python
    rows = tfaccel.clustering.clustering_summary(model)
    rows[0]["distinct"]  # 16
    ```
    """
    rows = [_row(*entry) for entry in _entries(model, targets)]
    blanks = dict.fromkeys(("clusters", "per_channel", "distinct"), None)
    rows.append(counts.total_row(rows, **blanks, distinct_per_channel=None))
    _print(rows, print_fn)
    return rows


def _entries(model, targets):
    """Yields `(variable, values, input_axes, clusters, per_channel)`."""
    if targets is not None:
        owners = owner_layers(model)
        for variable in match_variables(model, targets):
            axes = input_axes(variable, owners.get(id(variable)))
            yield variable, ops.convert_to_numpy(variable), axes, None, None
        return
    states = [state for _, state in _state.find_states(model)]
    if not states:
        raise UserError(
            "The model is not clustered; pass the `targets` regexes to measure. "
            f"Received: targets={targets!r}"
        )
    for state in states:
        for record in state.weights:
            values = ops.convert_to_numpy(record.weight())
            yield (
                record.variable,
                values,
                record.input_axes,
                state.num_clusters,
                state.per_channel,
            )


def _row(variable, values, axes, clusters, per_channel):
    zeros = counts.zeros(values)
    per_column = counts.distinct_per_column(to_matrix(values, axes))
    return {
        "path": variable.path,
        "shape": tuple(values.shape),
        "size": int(values.size),
        "clusters": clusters,
        "per_channel": per_channel,
        "distinct": counts.distinct(values, nonzero=True),
        "distinct_per_channel": int(per_column.max(initial=0)),
        "zeros": zeros,
        "sparsity": counts.ratio(zeros, values.size),
    }


def _print(rows, print_fn):
    table = rich.table.Table(title="Clustering summary")
    names = ("Variable", "Shape", "Size", "Clusters", "Distinct", "Per channel")
    for name in (*names, "Sparsity"):
        left = name == "Variable"
        table.add_column(name, justify="left" if left else "right", overflow="fold")
    for row in rows:
        cells = [row["path"], _text(row["shape"]), str(row["size"])]
        cells += [_text(row[key]) for key in ("clusters", "distinct")]
        cells += [_text(row["distinct_per_channel"]), f"{row['sparsity']:.2%}"]
        table.add_row(*cells, end_section=row is rows[-2])
    print_table(table, print_fn)


def _text(value):
    return "" if value is None else str(value)
