"""Functions over every technique applied to a model: callbacks, strip, summary.

Each technique keeps its own state beside the model and registers itself in
`tfaccel.core.registry` when its package is imported; these functions ask
the registry what was applied and call that technique's part: callbacks in
the order techniques are applied (pruning, clustering, QAT), strips in each
technique's strip order (clustering, QAT, pruning).
"""

import importlib

import rich.table

from tfaccel._tables import print_table
from tfaccel.core import counts, registry
from tfaccel.core.optimizer import follow_variables
from tfaccel.core.targets import match_variables
from tfaccel.errors import UserError

# The technique packages; importing one registers it. A new technique adds
# its package here and registers itself in its `__init__`.
PACKAGES = (
    "tfaccel.pruning",
    "tfaccel.clustering",
    "tfaccel.quantization",
    "tfaccel.compression",
)


def load_techniques():
    """Imports every technique package, so that each one is registered."""
    for name in PACKAGES:
        importlib.import_module(name)


def callbacks(model, log_dir=None):
    """Returns the callbacks that `model.fit` needs for what `model` carries.

    Args:
        model: a Keras model changed by `tfaccel.prune`, `tfaccel.cluster`
            or `tfaccel.quantize_aware` (or one holding such a model as a
            layer).
        log_dir: None, or a TensorBoard folder for per-layer statistics.

    Returns:
        A list of `keras.callbacks.Callback`; empty for a plain model.

    Example:

    ```python
    model.fit(ds, epochs=4, callbacks=tfaccel.callbacks(model))
    ```
    """
    load_techniques()
    return [
        technique.callback(log_dir=log_dir)
        for technique in registry.techniques()
        if technique.callback is not None and technique.is_training(model)
    ]


def strip(model):
    """Removes every technique's training-only state; keeps its effect.

    The model is changed in place and returned: pruned weights keep their
    zeros, clustered kernels hold their shared values as plain weights, and
    the model saves and loads as a plain Keras model. QAT
    weights are baked onto the int8 grid and its activation ranges frozen,
    ready for TFLite conversion (`tfaccel.quantization.strip_quantization`).

    Args:
        model: a Keras model changed by `tfaccel.prune`, `tfaccel.cluster`
            and/or `tfaccel.quantize_aware`.

    Returns:
        `model` itself, with no tfaccel training state.

    Example:

    ```python
    model = tfaccel.strip(model)
    model.save("model.keras")
    ```
    """
    # Clustering first: it writes the shared values into the kernels, which
    # QAT's strip then rounds onto the int8 grid (QAT trained through the
    # clustered weights). Then in the reverse order of application: QAT's
    # strip puts back the constraint it found, pruning's the one before.
    load_techniques()
    for technique in registry.strip_sequence():
        model = technique.strip(model)
    # A compiled model keeps training and saving with its optimizer: its
    # slots must be those of the variables left.
    follow_variables(model)
    return model


def summary(model, targets=None, print_fn=None, structure=None, block=None):
    """Prints and returns, per weight, its sparsity, distinct values and techniques.

    One table for whatever `model` carries: the rows are the weights that
    pruning, clustering or QAT changed (or, with `targets`, the weights the
    regexes match, on any model, stripped or not). Values are the ones the
    forward pass uses: a clustered kernel is read through its centroids.

    Args:
        model: a Keras model.
        targets: None for the weights techniques changed, or a list of
            regexes (as for `tfaccel.prune`).
        print_fn: None to print with rich, or a function given the table text.
        structure: the `"N:M"` label of the `targets` rows (a stripped model
            no longer knows how it was pruned).
        block: the `(rows, cols)` label of the `targets` rows.

    Returns:
        A list of dicts with keys `path`, `shape`, `size`, `zeros`,
        `sparsity`, `structure` (pruning's pattern: "unstructured", "2:4",
        "block 1x4"), `distinct` (how many different values, zero included:
        `num_clusters` + 1 for a clustered, pruned kernel) and `techniques`
        (`{name: description}`, e.g. `{"clustering": "16 clusters"}`): one
        per weight, then a `"total"` row whose sparsity is weighted by size.

    Raises:
        UserError: `model` carries no technique and `targets` is None.

    Example:

    ```python
    rows = tfaccel.summary(model)
    rows[-1]["sparsity"]  # 0.5
    ```
    """
    from tfaccel.pruning.summary import structure_label

    load_techniques()
    described = registry.describe(model)
    if targets is not None:
        variables = match_variables(model, targets)
        label = structure_label(structure, block)
    else:
        variables = [v for v in model.weights if id(v) in described]
        label = ""
        if not variables:
            raise UserError(
                "The model carries no pruning, clustering or QAT; pass the "
                f"`targets` regexes to measure. Received: targets={targets!r}"
            )
    values = registry.effective_weights(model)
    rows = []
    for variable in variables:
        techniques = described.get(id(variable), {})
        rows.append(
            counts.weight_row(
                variable.path,
                values.get(id(variable), variable),
                structure=techniques.get("pruning", label),
                techniques=techniques,
            )
        )
    rows.append(counts.total_row(rows, structure="", distinct=None, techniques={}))
    _print(rows, print_fn)
    return rows


def _print(rows, print_fn):
    table = rich.table.Table(title="tfaccel summary")
    columns = ("Weight", "Shape", "Size", "Sparsity", "Distinct", "Techniques")
    for name in columns:
        left = name in ("Weight", "Techniques")
        table.add_column(name, justify="left" if left else "right", overflow="fold")
    for row in rows:
        shape = "" if row["shape"] is None else str(row["shape"])
        distinct = "" if row["distinct"] is None else str(row["distinct"])
        techniques = [f"{name}: {text}" for name, text in row["techniques"].items()]
        if row["structure"] and "pruning" not in row["techniques"]:
            techniques.insert(0, row["structure"])
        table.add_row(
            row["path"],
            shape,
            str(row["size"]),
            f"{row['sparsity']:.2%}",
            distinct,
            ", ".join(techniques),
            end_section=row is rows[-2],
        )
    print_table(table, print_fn)
