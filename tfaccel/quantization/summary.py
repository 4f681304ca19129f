"""`quantization_summary`: a per-layer table of what QAT quantizes."""

import io

import rich.console
import rich.table
from keras import ops

from tfaccel.core import counts
from tfaccel.errors import UserError
from tfaccel.quantization import _state


def quantization_summary(model, print_fn=None):
    """Prints and returns one row per quantized layer.

    Args:
        model: a model changed by `tfaccel.quantize_aware` (stripped or not).
        print_fn: None to print with rich, or a function given the table text.

    Returns:
        A list of dicts with keys `path`, `kind`, `shape`, `weight_bits`
        (None for attention matmuls), `per_channel`, `sparsity` (fraction of
        exact zeros in the weight, or None) and `ranges` (tensor name ->
        `(min, max)`).

    Example:

    ```python
    rows = tfaccel.quantization_summary(model)
    ```
    """
    states = [state for _, state in _state.find_states(model)]
    if not states:
        raise UserError(
            "The model has no quantization-aware layers; call "
            "tfaccel.quantize_aware(model, ...) first."
        )
    rows = [_row(record, state.config) for state in states for record in state.layers]
    _print(rows, print_fn)
    return rows


def _row(record, config):
    weights = None if record.weight is None else ops.convert_to_numpy(record.weight)
    per_channel = config.per_channel and record.kind != "embedding"
    return {
        "path": record.path,
        "kind": record.kind,
        "shape": None if weights is None else tuple(weights.shape),
        "weight_bits": None if weights is None else config.weight_bits,
        "per_channel": None
        if weights is None
        else (per_channel or record.kind == "embedding"),
        "sparsity": None if weights is None else counts.sparsity(weights),
        "ranges": {name: q.values() for name, q in record.ranges.items()},
    }


def _print(rows, print_fn):
    table = rich.table.Table(title="Quantization summary")
    for name in ("Layer", "Kind", "Weight", "Bits", "Sparsity", "Activation ranges"):
        table.add_column(
            name,
            justify="left" if name in ("Layer", "Activation ranges") else "right",
            overflow="fold",
        )
    for row in rows:
        weight = "" if row["shape"] is None else str(row["shape"])
        bits = (
            ""
            if row["weight_bits"] is None
            else (
                f"int{row['weight_bits']} "
                + ("per-channel" if row["per_channel"] else "per-tensor")
            )
        )
        sparsity = "" if row["sparsity"] is None else f"{row['sparsity']:.2%}"
        ranges = ", ".join(
            f"{k} [{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in row["ranges"].items()
        )
        table.add_row(
            row["path"], row["kind"], weight, bits, sparsity, ranges or "weight only"
        )
    if print_fn is None:
        rich.console.Console(width=160).print(table)
        return
    buffer = io.StringIO()
    rich.console.Console(file=buffer, width=160).print(table)
    print_fn(buffer.getvalue())
