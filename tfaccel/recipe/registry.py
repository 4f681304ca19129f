"""The registry of recipe modifier types.

A recipe stage lists modifiers, each picked by its `type:` key. Every
technique registers the pydantic model of its config here, so a new technique
extends the recipe format without touching the schema or the runner:

```python
@register_modifier("magnitude_pruning")
class MagnitudePruning(Modifier):
    type: Literal["magnitude_pruning"] = "magnitude_pruning"
    targets: list[str] = Field(description="Regexes over variable paths.")
```

This module imports only pydantic, so validating a recipe stays fast.
"""

import contextlib
import re
import typing

import pydantic
from pydantic_core import PydanticCustomError, core_schema

_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_MODIFIERS = {}  # type name -> Modifier subclass


# The `Modifier.order` from which an applier returns what `fit` trains
# around the model (a distiller around its student), not the model itself.
WRAPS_FOR_TRAINING = 3


class Modifier(pydantic.BaseModel):
    """Base class for the config of one modifier in a recipe stage.

    Subclasses set `type` to a one-value `Literal` and add their own fields.
    Unknown keys are refused and values are not coerced (`"3"` is not `3`).
    """

    model_config = pydantic.ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    # "module:function" the recipe runner calls to apply the modifier, as
    # `function(model, modifier, context)` with a `recipe.context.StageContext`;
    # it returns the model the stage goes on with (or, for order 3, what
    # `fit` trains around it). Imported only when a recipe runs. None: the
    # schema knows the type, this build cannot run it.
    applier: typing.ClassVar[str | None] = None
    # Modifiers of one stage are applied in this order (then recipe order):
    # 0 builds a smaller model, 1 replaces layers, 2 wraps weights, 3 wraps
    # the finished model for training.
    order: typing.ClassVar[int] = 2

    type: str = pydantic.Field(description="Which technique this modifier applies.")


def register_modifier(type_name):
    """Returns a class decorator that registers a modifier config for `type_name`.

    Args:
        type_name: the value of `type:` in a recipe, e.g. `"magnitude_pruning"`.

    Returns:
        A decorator that registers the class and returns it unchanged.

    Example:

    ```python
    @register_modifier("dummy")
    class Dummy(Modifier):
        type: Literal["dummy"] = "dummy"
        strength: float = 0.5
    ```
    """

    def decorator(cls):
        _check_modifier_class(type_name, cls)
        old = _MODIFIERS.get(type_name)
        if old is not None and _qualified_name(old) != _qualified_name(cls):
            raise ValueError(
                f"Modifier type '{type_name}' is already registered to "
                f"{_qualified_name(old)}. Received: cls={_qualified_name(cls)}"
            )
        _MODIFIERS[type_name] = cls
        return cls

    return decorator


def unregister_modifier(type_name):
    """Removes the modifier registered for `type_name` and returns its class.

    Args:
        type_name: a registered modifier type.

    Returns:
        The class that was registered.
    """
    if type_name not in _MODIFIERS:
        raise ValueError(
            f"No modifier is registered for type '{type_name}'. "
            f"Registered: {_type_list()}. Received: type_name={type_name!r}"
        )
    return _MODIFIERS.pop(type_name)


@contextlib.contextmanager
def temporary_modifier(type_name, cls):
    """Registers `cls` for `type_name` inside a `with` block (for tests).

    Args:
        type_name: the value of `type:` in a recipe.
        cls: a `Modifier` subclass.

    Yields:
        `cls`, registered until the block ends.

    Example:

    ```python
    with temporary_modifier("dummy", Dummy):
        recipe = parse_recipe(text)
    ```
    """
    register_modifier(type_name)(cls)
    try:
        yield cls
    finally:
        _MODIFIERS.pop(type_name, None)


def registered_modifiers():
    """Returns a dict of type name to `Modifier` subclass, sorted by name."""
    return dict(sorted(_MODIFIERS.items()))


def validate_modifier(value):
    """Validates one `modifiers:` item with the class registered for its `type`.

    Args:
        value: a mapping from the recipe, or a `Modifier` instance.

    Returns:
        An instance of the registered `Modifier` subclass.

    Raises:
        pydantic.ValidationError: located at `type` for a missing or unknown
            type, or at the bad key inside the modifier.
    """
    if isinstance(value, Modifier):
        value = value.model_dump()
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "modifier_mapping", "should be a mapping with a 'type' key"
        )
    if "type" not in value:
        raise _type_error("missing", "required key is missing", value)
    type_name = value["type"]
    cls = _MODIFIERS.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise _type_error(
            "unknown_modifier",
            f"unknown modifier type {type_name!r}; registered types: {_type_list()}",
            type_name,
        )
    return cls.model_validate(value)


class ModifierField:
    """Pydantic type of one `modifiers:` item: dispatches on `type` at run time.

    The JSON Schema is built when asked, from the modifiers registered then.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        return core_schema.no_info_plain_validator_function(
            validate_modifier,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _dump_modifier, info_arg=True
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema, handler):
        if not _MODIFIERS:
            return {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"type": "string"}},
                "description": "A modifier; no modifier types are registered.",
            }
        branches = []
        for model in registered_modifiers().values():
            branch = handler(model.__pydantic_core_schema__)
            _require_type(handler.resolve_ref_schema(branch))
            branches.append(branch)
        return {"oneOf": branches}


def _require_type(schema):
    # `type` has a default in Python but must be written in a recipe.
    required = schema.setdefault("required", [])
    if "type" not in required:
        required.insert(0, "type")


def _dump_modifier(modifier, info):
    return modifier.model_dump(mode=info.mode, by_alias=info.by_alias)


def _type_error(error_type, message, value):
    error = PydanticCustomError(error_type, message)
    return pydantic.ValidationError.from_exception_data(
        "Modifier", [{"type": error, "loc": ("type",), "input": value}]
    )


def _check_modifier_class(type_name, cls):
    if not isinstance(type_name, str) or not _TYPE_NAME.fullmatch(type_name):
        raise ValueError(
            "A modifier type name must match [a-z][a-z0-9_]*. "
            f"Received: type_name={type_name!r}"
        )
    if not (isinstance(cls, type) and issubclass(cls, Modifier)):
        raise ValueError(
            "A registered modifier must subclass tfaccel.recipe.registry.Modifier. "
            f"Received: cls={cls!r}"
        )
    annotation = cls.model_fields["type"].annotation
    if typing.get_args(annotation) != (type_name,):
        raise ValueError(
            f"{_qualified_name(cls)} must declare "
            f'`type: Literal["{type_name}"] = "{type_name}"`. '
            f"Received: type annotation {annotation!r}"
        )


def _qualified_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _type_list():
    return ", ".join(sorted(_MODIFIERS)) or "none yet"
