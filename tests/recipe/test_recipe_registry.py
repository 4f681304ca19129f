"""Tests for tfaccel.recipe.registry: modifier dispatch on `type`."""

from typing import Literal

import pydantic
import pytest

from tfaccel.recipe.loader import RecipeError, parse_recipe
from tfaccel.recipe.registry import (
    Modifier,
    register_modifier,
    registered_modifiers,
    temporary_modifier,
    unregister_modifier,
)
from tfaccel.recipe.schema import recipe_json_schema

RECIPE = """\
version: 1
name: demo
task: {name: g2p}
model: {preset: small}
stages:
  - name: prune
    epochs: 4
    modifiers:
      - type: dummy
        targets: ["re:.*kernel"]
        schedule: {final_sparsity: 0.5, end_epoch: 3}
"""


class DummySchedule(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    final_sparsity: float = pydantic.Field(ge=0, le=1)
    end_epoch: int = 1


class Dummy(Modifier):
    type: Literal["dummy"] = "dummy"
    targets: list[str]
    schedule: DummySchedule | None = None


@pytest.fixture(autouse=True)
def _only_test_modifiers():
    # Built-in modifiers (tfaccel.recipe.modifiers) would show up in messages.
    saved = {name: unregister_modifier(name) for name in registered_modifiers()}
    yield
    for name, cls in saved.items():
        register_modifier(name)(cls)


def _message(text):
    with pytest.raises(RecipeError) as info:
        parse_recipe(text, source="r.yaml")
    return str(info.value)


def test_dispatch_builds_the_registered_class():
    with temporary_modifier("dummy", Dummy):
        recipe = parse_recipe(RECIPE)
    (modifier,) = recipe.stages[0].modifiers
    assert isinstance(modifier, Dummy)
    assert modifier.targets == ["re:.*kernel"]
    assert modifier.schedule.final_sparsity == 0.5
    dumped = recipe.model_dump(mode="json")["stages"][0]["modifiers"][0]
    assert dumped["schedule"] == {"final_sparsity": 0.5, "end_epoch": 3}


def test_context_manager_unregisters():
    with temporary_modifier("dummy", Dummy):
        assert registered_modifiers()["dummy"] is Dummy
    assert "dummy" not in registered_modifiers()
    message = _message(RECIPE)
    assert "stages[0].modifiers[0].type: unknown modifier type 'dummy'" in message


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            "final_sparsity: 0.5",
            "final_sparsity: 1.5",
            "r.yaml: stages[0].modifiers[0].schedule.final_sparsity: "
            "should be less than or equal to 1; got 1.5",
        ),
        (
            "end_epoch: 3",
            "end_epok: 3",
            "r.yaml: stages[0].modifiers[0].schedule.end_epok: unknown key "
            "(did you mean 'end_epoch'?); got 3; allowed: final_sparsity, end_epoch",
        ),
        (
            "        targets",
            "        target",
            "r.yaml: stages[0].modifiers[0].targets: required key is missing | "
            "stages[0].modifiers[0].target: unknown key (did you mean 'targets'?); "
            "got ['re:.*kernel']; allowed: type, targets, schedule",
        ),
        (
            "type: dummy",
            "type: dumy",
            "r.yaml: stages[0].modifiers[0].type: unknown modifier type 'dumy'; "
            "registered types: dummy",
        ),
        (
            "      - type: dummy\n        targets",
            "      - targets",
            "r.yaml: stages[0].modifiers[0].type: required key is missing",
        ),
    ],
)
def test_errors_inside_a_modifier_have_full_key_paths(old, new, expected):
    with temporary_modifier("dummy", Dummy):
        assert _message(RECIPE.replace(old, new)) == expected


def test_decorator_registers_and_unregister_returns_class():
    @register_modifier("dummy_two")
    class DummyTwo(Modifier):
        type: Literal["dummy_two"] = "dummy_two"

    try:
        assert registered_modifiers()["dummy_two"] is DummyTwo
    finally:
        assert unregister_modifier("dummy_two") is DummyTwo
    with pytest.raises(ValueError, match="No modifier is registered"):
        unregister_modifier("dummy_two")


def test_registering_a_taken_name_fails():
    class Other(Modifier):
        type: Literal["dummy"] = "dummy"

    with temporary_modifier("dummy", Dummy):
        with pytest.raises(ValueError, match="already registered"):
            register_modifier("dummy")(Other)
        assert registered_modifiers()["dummy"] is Dummy


@pytest.mark.parametrize(
    "type_name, cls, words",
    [
        ("Bad-Name", Dummy, r"\[a-z\]"),
        ("dummy", DummySchedule, "must subclass"),
        ("other", Dummy, r'Literal\["other"\]'),
    ],
)
def test_bad_registrations_fail(type_name, cls, words):
    with pytest.raises(ValueError, match=words):
        register_modifier(type_name)(cls)
    assert type_name not in registered_modifiers()


def test_json_schema_lists_registered_modifiers():
    with temporary_modifier("dummy", Dummy):
        schema = recipe_json_schema()
    items = schema["$defs"]["StageConfig"]["properties"]["modifiers"]["items"]
    (branch,) = items["oneOf"]
    assert branch["properties"]["type"]["const"] == "dummy"
    assert branch["required"] == ["type", "targets"]
    assert "DummySchedule" in schema["$defs"]
    plain = recipe_json_schema()
    assert "oneOf" not in plain["$defs"]["StageConfig"]["properties"]["modifiers"]


class Runnable(Modifier):
    type: Literal["runnable"] = "runnable"
    applier = "tfaccel.pruning.recipe:apply_modifier"
    order = 0


def test_the_runner_finds_a_modifiers_applier_and_order_on_its_class():
    from tfaccel.pruning.recipe import apply_modifier
    from tfaccel.recipe.stage import applier

    assert applier(Runnable()) is apply_modifier
    assert Runnable.order == 0 and Dummy.order == 2


def test_a_modifier_without_applier_is_refused_before_any_training(
    tmp_path, monkeypatch
):
    from tfaccel.errors import UserError
    from tfaccel.recipe.runner import run_recipe

    monkeypatch.chdir(tmp_path)
    with temporary_modifier("dummy", Dummy), temporary_modifier("runnable", Runnable):
        recipe = parse_recipe(RECIPE)
        with pytest.raises(
            UserError, match="cannot apply modifier 'dummy' yet"
        ) as info:
            run_recipe(recipe, log=lambda line: None)
    assert "Available: runnable." in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_every_applier_takes_model_modifier_and_the_stage_context():
    import inspect

    from tfaccel.recipe import modifiers
    from tfaccel.recipe.stage import applier

    # The built-in classes (this module's fixture unregisters them).
    runnable = {
        cls.__name__: cls
        for cls in vars(modifiers).values()
        if isinstance(cls, type) and issubclass(cls, Modifier) and cls.applier
    }
    assert {"MagnitudePruning", "Distillation", "Shrink"} <= set(runnable)
    for name, cls in runnable.items():
        parameters = list(inspect.signature(applier(cls.model_construct())).parameters)
        assert parameters == ["model", "modifier", "context"], name
