"""Errors that tfaccel raises for a user's mistake.

The CLI prints a `UserError` as one line, with no traceback, and exits with
code 2. Library users can catch it like any `ValueError`.
"""


class UserError(ValueError):
    """A mistake in the user's input: names the problem and how to fix it."""


class TracedUserError(UserError):
    """A `UserError` raised while TensorFlow traces a function (in `fit`).

    AutoGraph rewrites an error raised inside a traced function so that its
    message starts with "in user code:" and a stack, unless the error's
    class has its own `__init__`: this one does, so the message stays the
    first line.
    """

    def __init__(self, message):
        super().__init__(message)


class WorkerLostError(RuntimeError):
    """Another worker of a multi-worker job stopped or became unreachable.

    Not the user's mistake, but not a bug either: the CLI prints the message
    (which says how to resume) as one line and exits with code 3.
    """


class DivergedError(RuntimeError):
    """Training reached a non-finite loss; nothing was published.

    The CLI prints the message as one line and exits with code 1, as for a
    missed `assert` limit: the run did its work and the result is bad.
    """


class ExportFailedError(RuntimeError):
    """`tfaccel.export` tried every format and some failed; those that
    verified were published.

    The CLI prints one line per failure and exits with code 1.

    Attributes:
        result: the `ExportResult` of the formats that were published.
        failures: dict from format name to its one-line reason.
    """

    def __init__(self, result, failures):
        self.result, self.failures = result, dict(failures)
        published = len(result.artifacts)
        reasons = "; ".join(f"{name}: {line}" for name, line in self.failures.items())
        super().__init__(
            f"{len(self.failures)} of {published + len(self.failures)} export "
            f"formats failed ({reasons}); the other {published} were published "
            f"to {result.path}."
        )


class MissingExtraError(UserError, ImportError):
    """An optional dependency is missing; the message names the pip extra."""


def missing_extra(module, extra):
    """Returns a `MissingExtraError` for `module`, naming the pip `extra`."""
    return MissingExtraError(
        f"The optional dependency '{module}' is not installed. "
        f"Install it with: pip install 'tfaccel[{extra}]'. "
        f"Received: module={module}"
    )


def error_line(error, limit=500):
    """`"TypeName: message"` on one line, cut to `limit` characters of message.

    For errors recorded in a JSON report, or quoted inside a `UserError`.
    """
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:limit]}"
