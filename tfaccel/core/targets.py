"""Targets: regexes over `variable.path` that pick what a technique changes."""

from tfaccel.core import patterns
from tfaccel.errors import UserError

_EXAMPLES = 5  # variable paths listed when a regex matches nothing


def match_variables(model, targets, extra=()):
    """Returns the trainable variables whose paths fully match a target regex.

    Args:
        model: a built Keras model.
        targets: list of regexes, each with an optional `re:` prefix.
        extra: more candidate variables beyond the trainable ones (the
            frozen kernels of clustered layers, which QAT still targets).

    Returns:
        A list of variables, in `model.trainable_weights` order, each once.

    Raises:
        UserError: a regex is invalid or matches no variable.

    Example:

    ```python
    match_variables(model, ["re:.*feedforward.*kernel"])
    ```
    """
    if isinstance(targets, str) or not targets:
        raise UserError(
            "`targets` must be a non-empty list of regexes over variable paths. "
            f"Received: targets={targets!r}"
        )
    variables = _unique([*model.trainable_weights, *extra])
    matched = set()
    for target in targets:
        pattern = _compile(target)
        hits = [v for v in variables if pattern.fullmatch(v.path)]
        if not hits:
            raise UserError(_no_match_message(target, variables))
        matched.update(id(v) for v in hits)
    return [v for v in variables if id(v) in matched]


def fullmatch(target, path):
    """Returns whether `target` (a regex, `re:` prefix allowed) matches `path`.

    An invalid regex matches nothing: `match_variables` reports it.
    """
    return patterns.fullmatch(target, path)


def _compile(target):
    try:
        return patterns.compile_target(target)
    except ValueError as error:
        message = str(error)
        raise UserError(
            f"{message[0].upper()}{message[1:]}. Received: target={target!r}"
        ) from None


def _no_match_message(target, variables):
    examples = ", ".join(v.path for v in variables[:_EXAMPLES])
    return (
        f"The target regex '{target}' matches no trainable variable path "
        f"(matched in full, with RE2). Example paths: {examples}. "
        f"Received: target={target!r}"
    )


def _unique(variables):
    # A shared layer lists its variables once per use.
    return list({id(v): v for v in variables}.values())
