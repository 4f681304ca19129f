"""Printing rich tables: to the console, or as text to a callback."""

import io

import rich.console


def print_table(table, print_fn=None):
    """Prints a `rich.table.Table` with rich, or passes its text to `print_fn`.

    Args:
        table: the table.
        print_fn: None to print to the console; else called once with the
            table rendered 120 characters wide.
    """
    if print_fn is None:
        rich.console.Console().print(table)
        return
    buffer = io.StringIO()
    rich.console.Console(file=buffer, width=120).print(table)
    print_fn(buffer.getvalue())
