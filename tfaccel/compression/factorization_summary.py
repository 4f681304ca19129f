"""`factorization_summary`: per-kernel ranks, energy kept and parameter counts."""

import io
import math

import rich.console
import rich.table

from tfaccel.compression import factorized_model
from tfaccel.compression.factorize import ATTRIBUTE
from tfaccel.errors import UserError


def factorization_summary(model, print_fn=None):
    """Prints and returns what `factorize` did to each targeted kernel.

    Rows come from the model's factorized layers, so a loaded model has
    them too; `energy` and the kernels that were skipped (kept as they are
    because their factors would not be smaller) are known only in the
    process that called `factorize`.

    Args:
        model: a model changed by `tfaccel.compression.factorize`.
        print_fn: None to print with rich, or a function given the table text.

    Returns:
        A list of dicts with keys `path` (the kernel's variable path),
        `shape`, `in` and `out` (its `(in, out)` view), `rank`,
        `factorized` (False for a skipped kernel), `energy` (the share of
        squared singular values the rank keeps, or None when unknown),
        `params_before` (`in * out`) and `params_after` (`rank * (in + out)`,
        or `in * out` when skipped), one per kernel in model order, then a
        `"total"` row of the parameter counts. The parameter counts are
        also the matmul MACs per token of each kernel.

    Raises:
        UserError: the model has no factorized kernel and no record of a
            `factorize` call.

    Example:

    ```python
    rows = factorization_summary(model)
    rows[-1]["params_after"] / rows[-1]["params_before"]  # 0.41
    ```
    """
    rows = _rows(model)
    if not rows:
        raise UserError(
            "The model has no factorized kernel; call "
            "tfaccel.compression.factorize(model, targets) first. "
            f"Received: model={model.name!r}"
        )
    rows.append(_total(rows))
    _print(rows, print_fn)
    return rows


def _rows(model):
    recorded = {r.path: r for r in getattr(model, ATTRIBUTE, [])}
    rows = {}
    for layer in factorized_model.low_rank_layers(model):
        path = factorized_model.kernel_path(layer)
        a, b = tuple(layer.kernel_a.shape), tuple(layer.kernel_b.shape)
        rows[path] = _row(
            path=path,
            shape=tuple(layer.kernel.shape),  # the product's: the kernel's layout
            rows=math.prod(a[:-1]),
            cols=math.prod(b[1:]),
            rank=layer.rank,
            energy=getattr(recorded.get(path), "energy", None),
            factorized=True,
        )
    for path, record in recorded.items():
        if not record.factorized:
            rows[path] = _row(**{f: getattr(record, f) for f in _FIELDS})
    order = [v.path.removesuffix("_a") for v in model.weights]
    return sorted(rows.values(), key=lambda row: _index(order, row["path"]))


_FIELDS = ("path", "shape", "rows", "cols", "rank", "energy", "factorized")


def _row(path, shape, rows, cols, rank, energy, factorized):
    before = rows * cols
    return {
        "path": path,
        "shape": shape,
        "in": rows,
        "out": cols,
        "rank": rank,
        "factorized": factorized,
        "energy": energy,
        "params_before": before,
        "params_after": rank * (rows + cols) if factorized else before,
    }


def _index(order, path):
    return order.index(path) if path in order else len(order)


def _total(rows):
    return {
        "path": "total",
        "shape": None,
        "in": None,
        "out": None,
        "rank": None,
        "factorized": None,
        "energy": None,
        "params_before": sum(row["params_before"] for row in rows),
        "params_after": sum(row["params_after"] for row in rows),
    }


def _print(rows, print_fn):
    table = rich.table.Table(title="Factorization summary")
    names = ("Kernel", "(in, out)", "Rank", "Energy", "Params before", "After")
    for name in names:
        left = name == "Kernel"
        table.add_column(name, justify="left" if left else "right", overflow="fold")
    for row in rows:
        view = "" if row["in"] is None else f"({row['in']}, {row['out']})"
        rank = "" if row["rank"] is None else str(row["rank"])
        if row["factorized"] is False:
            rank += " (skipped)"
        energy = "" if row["energy"] is None else f"{row['energy']:.1%}"
        cells = [row["path"], view, rank, energy]
        cells += [f"{row['params_before']:,}", f"{row['params_after']:,}"]
        table.add_row(*cells, end_section=row is rows[-2])
    if print_fn is None:
        rich.console.Console().print(table)
        return
    buffer = io.StringIO()
    rich.console.Console(file=buffer, width=140).print(table)
    print_fn(buffer.getvalue())
