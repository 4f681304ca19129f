"""Target regexes, compiled by RE2 so that matching takes linear time.

Python's `re` backtracks: a target with nested quantifiers, such as
`(.*a)*x`, takes time that doubles with each character of a variable path,
and `prune` would hang. RE2 (google-re2) matches in time linear in the path
whatever the pattern. Its syntax is Python's without backreferences and
lookarounds; a target that uses them is refused with a one-line error.
Imports no TensorFlow: recipe validation uses it too.
"""

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error is raised, not also logged


def compile_target(target):
    """Returns the compiled RE2 pattern of `target` (an `re:` prefix is dropped).

    Raises:
        ValueError: `target` is not a string, or not a regex RE2 accepts.
    """
    if not isinstance(target, str):
        raise ValueError(f"a target must be a regex string, not {target!r}")
    text = target.removeprefix("re:")
    try:
        return re2.compile(text, options=_OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise ValueError(
            f"invalid target regex {text!r}: {reason} (targets use RE2 syntax: "
            "no backreferences or lookarounds)"
        ) from None


def fullmatch(target, path):
    """Returns whether `target` matches all of `path`; an invalid one never does."""
    try:
        return compile_target(target).fullmatch(path) is not None
    except ValueError:
        return False
