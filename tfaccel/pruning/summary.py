"""`pruning_summary`: sparsity and distinct values of pruned variables.

`tfaccel.summary` covers every technique on a model in one table.
"""

import rich.console
import rich.table

from tfaccel._tables import print_table
from tfaccel.core import counts
from tfaccel.core.targets import match_variables
from tfaccel.errors import UserError
from tfaccel.pruning import _state, _structure


def pruning_summary(model, targets=None, print_fn=None, structure=None, block=None):
    """Prints and returns the measured sparsity of every pruned variable.

    Sparsity is measured from the weights: the fraction of exact zeros. On a
    pruned model the rows are its targets; on a stripped (or any) model, pass
    `targets` (regexes, as for `prune`) and, to label the rows, the
    `structure` or `block` it was pruned with.

    Args:
        model: a Keras model.
        targets: None for a pruned model's own targets, or a list of regexes.
        print_fn: None to print with rich, or a function given the table text.
        structure: the `"N:M"` label for `targets` rows.
        block: the `(rows, cols)` label for `targets` rows.

    Returns:
        A list of dicts with keys `path`, `shape`, `size`, `zeros`,
        `sparsity`, `structure` and `distinct` (how many different values,
        zero included: `num_clusters` + 1 for a clustered, pruned kernel):
        one per variable, then a `"total"` row whose sparsity is weighted by
        size.

    Example:

    ```python
    rows = pruning_summary(model)
    rows[-1]["sparsity"]  # 0.5
    ```
    """
    rows = [_row(v, label) for v, label in _variables(model, targets, structure, block)]
    rows.append(counts.total_row(rows, structure="", distinct=None))
    _print(rows, print_fn)
    return rows


def _variables(model, targets, structure, block):
    if targets is not None:
        label = structure_label(structure, block)
        return [(v, label) for v in match_variables(model, targets)]
    states = [state for _, state in _state.find_states(model)]
    if not states:
        raise UserError(
            "The model is not pruned; pass the `targets` regexes to measure. "
            f"Received: targets={targets!r}"
        )
    return [
        (target.variable, _structure.structure_label(state.n_m, state.block))
        for state in states
        for target in state.targets
    ]


def structure_label(structure=None, block=None):
    """Returns the label of a pruning pattern: "unstructured", "2:4", "block 1x4".

    Args:
        structure: None or an `"N:M"` string, as for `tfaccel.prune`.
        block: None or `(rows, cols)`, as for `tfaccel.prune`.

    Raises:
        UserError: a malformed structure or block, or both given.
    """
    return _structure.structure_label(*_structure.parse_structure(structure, block))


def _row(variable, label):
    return counts.weight_row(variable.path, variable, structure=label)


def _print(rows, print_fn):
    table = rich.table.Table(title="Pruning summary")
    for name in ("Variable", "Shape", "Size", "Sparsity", "Distinct", "Structure"):
        left = name == "Variable"
        table.add_column(name, justify="left" if left else "right", overflow="fold")
    for row in rows:
        shape = "" if row["shape"] is None else str(row["shape"])
        distinct = "" if row["distinct"] is None else str(row["distinct"])
        cells = (
            row["path"],
            shape,
            str(row["size"]),
            f"{row['sparsity']:.2%}",
            distinct,
        )
        table.add_row(*cells, row["structure"], end_section=row is rows[-2])
    print_table(table, print_fn)
