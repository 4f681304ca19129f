"""Reads recipe files into `Recipe` objects, with one-line errors for people.

Every problem becomes a `RecipeError` whose message is one line:

    recipes/x.yaml: stages[0].epochs: should be greater than or equal to 1; got 0

It names the file, the key path, the problem, the bad value and, when known,
the allowed values. This module imports only pyyaml and pydantic.
"""

import collections.abc
import difflib
import pathlib
import re
import reprlib
import types
import typing

import pydantic
import yaml

import tfaccel.recipe.modifiers  # noqa: F401  (registers the built-in modifiers)
from tfaccel.recipe.registry import ModifierField, registered_modifiers
from tfaccel.recipe.schema import Recipe, RecipeError

__all__ = ["RecipeError", "load_recipe", "parse_recipe", "validate_recipe_file"]

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a few hundred bytes; refuse anything huge
_GOT_CHARS = 60  # longest repr of a bad value in a message
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_REPR = reprlib.Repr()  # bounded: an aliased YAML tree can be huge when expanded
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist = 3, 4, 6
_REPR.maxstring = _REPR.maxother = 50
_TOP_LEVEL = "(top level)"


def load_recipe(path):
    """Reads and validates the recipe file at `path`.

    Args:
        path: a `.yaml` recipe file; `str` or `pathlib.Path`.

    Returns:
        The validated `Recipe`.

    Raises:
        RecipeError: the file is missing or unreadable, is not YAML, does not
            match the schema, or its output folder (`output_dir/name` under the
            current folder) passes through a symlink.

    Example:

    ```python
    recipe = load_recipe("recipes/g2p-baseline.yaml")
    recipe.baseline.epochs  # 12
    ```
    """
    source = str(path)
    recipe = parse_recipe(_read_text(pathlib.Path(path), source), source=source)
    recipe.run_dir()
    return recipe


def validate_recipe_file(path):
    """Checks a recipe file for `tfaccel validate`; same checks as `load_recipe`.

    Args:
        path: a `.yaml` recipe file.

    Returns:
        The validated `Recipe`.

    Raises:
        RecipeError: with a one-line message naming the file and key path.
    """
    return load_recipe(path)


def parse_recipe(text_or_dict, source="<string>"):
    """Validates a recipe given as YAML text or as an already-parsed dict.

    Args:
        text_or_dict: YAML text (`str`) or a mapping of recipe keys.
        source: the name to put at the start of error messages.

    Returns:
        The validated `Recipe`.

    Raises:
        RecipeError: with a one-line message naming `source` and the key path.

    Example:

    ```python
    recipe = parse_recipe(
        "version: 1\\nname: demo\\ntask: {name: g2p}\\nmodel: {preset: tiny}\\n"
    )
    ```
    """
    if isinstance(text_or_dict, str):
        data = _parse_yaml(text_or_dict, source)
    elif isinstance(text_or_dict, collections.abc.Mapping):
        data = text_or_dict
    else:
        raise TypeError(
            "parse_recipe takes YAML text or a mapping. "
            f"Received: text_or_dict of type {type(text_or_dict).__name__}"
        )
    if not isinstance(data, collections.abc.Mapping):
        raise _top_level_error(data, source)
    data = dict(data)
    try:
        recipe = Recipe.model_validate(data)
    except pydantic.ValidationError as error:
        raise RecipeError(_format_errors(error, data, source)) from None
    recipe._source = source
    return recipe


# === Reading ===


def _read_text(path, source):
    if path.is_dir():
        raise RecipeError(f"{source}: is a directory, not a recipe file")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_RECIPE_BYTES + 1)
    except FileNotFoundError:
        raise RecipeError(f"{source}: recipe file not found") from None
    except OSError as error:
        raise RecipeError(
            f"{source}: cannot read recipe file: {error.strerror}"
        ) from None
    if len(data) > MAX_RECIPE_BYTES:
        raise RecipeError(
            f"{source}: larger than {MAX_RECIPE_BYTES} bytes; not a recipe"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RecipeError(
            f"{source}: not UTF-8 text (bad byte at offset {error.start})"
        ) from None


def _parse_yaml(text, source):
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        raise RecipeError(_yaml_message(error, source)) from None
    except (yaml.YAMLError, RecursionError) as error:
        raise RecipeError(_one_line(f"{source}: YAML error: {error}")) from None
    _check_duplicate_keys(node, source)
    _check_expansion(node, source)
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        raise RecipeError(_yaml_message(error, source)) from None
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as error:
        # e.g. `2024-13-45` looks like a date to YAML but is not one.
        raise RecipeError(_one_line(f"{source}: YAML error: {error}")) from None


def _yaml_message(error, source):
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = error.problem or error.context or "invalid YAML"
    return _one_line(f"{source}: YAML syntax error{where}: {problem}")


# The most values a recipe may hold once YAML aliases are expanded: the
# shipped recipes hold under 200; a tree of aliases of aliases can hold
# billions in a few kilobytes, and validating it would take hours.
EXPANSION_BUDGET = 100_000


def _check_expansion(node, source):
    """Refuses a YAML tree whose aliases expand past `EXPANSION_BUDGET` values."""
    sizes = {}  # id(node) -> values under it, aliases expanded

    def size(item):
        if id(item) not in sizes:
            if isinstance(item, yaml.SequenceNode):
                children = item.value
            elif isinstance(item, yaml.MappingNode):
                children = [part for pair in item.value for part in pair]
            else:
                children = []
            sizes[id(item)] = min(
                1 + sum(size(child) for child in children), EXPANSION_BUDGET + 1
            )
        return sizes[id(item)]

    if node is not None and size(node) > EXPANSION_BUDGET:
        raise RecipeError(
            f"{source}: its YAML aliases expand to more than {EXPANSION_BUDGET:,} "
            "values; write the recipe out, or alias less"
        )


def _check_duplicate_keys(node, source, path=(), seen=None):
    # PyYAML keeps the last of two equal keys; a recipe treats that as a mistake.
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicate_keys(item, source, (*path, index), seen)
    elif isinstance(node, yaml.MappingNode):
        keys = set()
        for key, value in node.value:
            child = (*path, key.value if isinstance(key, yaml.ScalarNode) else "?")
            if isinstance(key, yaml.ScalarNode) and (key.tag, key.value) in keys:
                line = key.start_mark.line + 1
                raise RecipeError(
                    f"{source}: {_key_path(child)}: duplicate key at line {line}; "
                    "each key may appear once in a mapping"
                )
            keys.add((key.tag, key.value))
            _check_duplicate_keys(value, source, child, seen)


def _top_level_error(data, source):
    if data is None:
        return RecipeError(f"{source}: {_TOP_LEVEL}: the recipe is empty")
    return RecipeError(
        _one_line(
            f"{source}: {_TOP_LEVEL}: should be a mapping of recipe keys; "
            f"got {_got(data)}; allowed: {', '.join(_field_keys(Recipe))}"
        )
    )


# === Validation errors ===


def _format_errors(error, data, source):
    # Every error, in the order pydantic found them, on one line: a user
    # fixes them all in one edit instead of one per run.
    parts = [
        f"{_key_path(each['loc'])}: {_describe(each, data)}"
        for each in error.errors(include_url=False)
    ]
    return _one_line(f"{source}: " + " | ".join(parts))


def _describe(error, data):
    kind, ctx = error["type"], error.get("ctx", {})
    problem = _problem(error)
    allowed = ctx.get("allowed")
    if kind == "literal_error":
        allowed = ctx.get("expected")
    elif kind == "extra_forbidden":
        allowed_keys = _keys_at(error["loc"][:-1], data)
        problem += _suggestion(error["loc"][-1], allowed_keys)
        allowed = ", ".join(allowed_keys) or None
    parts = [problem]
    if kind not in ("missing", "unknown_modifier"):
        parts.append(f"got {_got(error['input'])}")
    if allowed:
        parts.append(f"allowed: {allowed}")
    return "; ".join(parts)


def _problem(error):
    kind, msg = error["type"], error["msg"]
    fixed = {
        "missing": "required key is missing",
        "extra_forbidden": "unknown key",
        "literal_error": "invalid value",
        "model_type": "should be a mapping",
        "dict_type": "should be a mapping",
    }
    if kind in fixed:
        return fixed[kind]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    msg = re.sub(r"^Input should", "should", msg)
    return msg[:1].lower() + msg[1:]


def _suggestion(key, allowed_keys):
    close = difflib.get_close_matches(str(key), allowed_keys, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _keys_at(loc, data):
    """Returns the keys allowed in the mapping at `loc`, or [] if unknown."""
    annotation = Recipe
    for item in loc:
        annotation = _child_annotation(_model_type(annotation, data), item)
        data = _child_data(data, item)
    model = _model_type(annotation, data)
    if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
        return _field_keys(model)
    return []


def _model_type(annotation, data):
    """Strips Annotated and `| None`; resolves a modifier item by its `type`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_type(typing.get_args(annotation)[0], data)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _model_type(args[0], data) if len(args) == 1 else annotation
    if annotation is ModifierField and isinstance(data, dict):
        type_name = data.get("type")
        if isinstance(type_name, str):
            return registered_modifiers().get(type_name, annotation)
    return annotation


def _child_annotation(annotation, item):
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        fields = {f.alias or name: f for name, f in annotation.model_fields.items()}
        return fields[item].annotation if item in fields else None
    if typing.get_origin(annotation) in (list, dict):
        return typing.get_args(annotation)[-1]
    return None


def _child_data(data, item):
    if isinstance(data, dict):
        return data.get(item)
    if isinstance(data, list) and isinstance(item, int) and 0 <= item < len(data):
        return data[item]
    return None


def _field_keys(model):
    return [field.alias or name for name, field in model.model_fields.items()]


# === Formatting ===


def _key_path(loc):
    """Formats a location as `stages[0].modifiers[1].schedule`."""
    text = ""
    for item in loc:
        if isinstance(item, int) and not isinstance(item, bool):
            text += f"[{item}]"
        elif isinstance(item, str) and _KEY.fullmatch(item):
            text += f".{item}" if text else item
        else:
            text += f"[{_got(item)}]"
    return text or _TOP_LEVEL


def _got(value):
    text = _REPR.repr(value)
    if len(text) > _GOT_CHARS:
        text = text[: _GOT_CHARS - 3] + "..."
    return text


def _one_line(message):
    return " ".join(part.strip() for part in message.splitlines())
