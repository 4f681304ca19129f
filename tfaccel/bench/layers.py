"""Per-layer table of a model: parameters, zeros and distinct values."""

import keras
import rich.console
import rich.table

from tfaccel._tables import print_table
from tfaccel.core import counts


def layer_rows(model):
    """Returns one row per weight of 2 or more axes, then a total row.

    Kernels and embedding tables are where pruning, clustering, shrinking
    and factorization show: the fraction of exact zeros (`sparsity`), the
    number of distinct values (16 + 0 for a clustered, pruned kernel) and
    the shape. Works on any Keras model. On a model still in training with
    `tfaccel.cluster` or `tfaccel.quantize_aware`, each row measures the
    weight its layer computes with (shared values, fake-quantized int8
    grid), as `tfaccel.strip` would leave it, and the clustering's indices
    and masks are not counted as weights.

    Args:
        model: a Keras model.

    Returns:
        A list of dicts with `path`, `shape`, `parameters`, `sparsity`,
        `distinct` and `dtype`; the last has `path="total"`, its sparsity
        weighted by size and `distinct=None`.

    Example:

    ```python
    rows = layer_rows(model)
    rows[-1]["parameters"]  # weights of 2+ axes in the whole model
    ```
    """
    effective, hidden = _training_state(model)
    rows = []
    zeros = 0
    seen = set(hidden)
    for variable in model.weights:
        if len(variable.shape) < 2 or id(variable) in seen:
            continue
        seen.add(id(variable))
        values = keras.ops.convert_to_numpy(effective.get(id(variable), variable))
        zeros += counts.zeros(values)
        rows.append(
            {
                "path": variable.path,
                "shape": list(values.shape),
                "parameters": int(values.size),
                "sparsity": counts.sparsity(values),
                "distinct": counts.distinct(values),
                "dtype": str(values.dtype),
            }
        )
    total = sum(row["parameters"] for row in rows)
    rows.append(
        {
            "path": "total",
            "shape": None,
            "parameters": total,
            "sparsity": counts.ratio(zeros, total),
            "distinct": None,
            "dtype": None,
        }
    )
    return rows


def _training_state(model):
    # Returns ({id(variable): the weight its layer computes with}, ids of the
    # techniques' own variables, such as clustering's centroids). Pruning
    # needs nothing: its masks are untracked and its zeros are written into
    # the variables. A later technique's weight wins: QAT's fake-quantized
    # kernel over clustering's shared values.
    from tfaccel.core import registry

    hidden = {id(variable) for variable in registry.own_variables(model)}
    return registry.effective_weights(model), hidden


def print_layers(rows, print_fn=None):
    """Prints `layer_rows` as a table: with rich, or as text to `print_fn`."""
    table = rich.table.Table(title="Weights of 2+ axes")
    for name in ("path", "shape", "parameters", "sparsity", "distinct"):
        table.add_column(
            name, justify="left" if name == "path" else "right", overflow="fold"
        )
    for row in rows:
        table.add_row(
            row["path"],
            "" if row["shape"] is None else "x".join(map(str, row["shape"])),
            f"{row['parameters']:,}",
            f"{row['sparsity']:.1%}",
            "" if row["distinct"] is None else str(row["distinct"]),
        )
    print_table(table, print_fn)
