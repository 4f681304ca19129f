"""Fuzz tests: parse_recipe returns a Recipe or raises a one-line RecipeError."""

import copy
import re
from typing import Literal

import pydantic
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfaccel.recipe.loader import RecipeError, parse_recipe
from tfaccel.recipe.registry import Modifier, temporary_modifier
from tfaccel.recipe.schema import EXPORT_FORMATS, Recipe

SOURCE = "fuzz.yaml"
FUZZ = settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# After "<source>: ": a key path (`a.b[0]`, `[1]`, `(top level)`) or a YAML error.
_STEP = r"(?:[A-Za-z_][\w-]*|\[.*?\])"
_LOCATED = re.compile(rf"YAML |\(top level\): |{_STEP}(?:\.{_STEP}|\[.*?\])*: ")


class FuzzModifier(Modifier):
    type: Literal["fuzz_modifier"] = "fuzz_modifier"
    strength: float = pydantic.Field(default=0.5, ge=0, le=1)


# === Strategies ===

_run_names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,15}", fullmatch=True).filter(
    lambda name: ".." not in name
)
_segments = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,7}", fullmatch=True)
_rel_paths = st.lists(_segments, min_size=1, max_size=3).map("/".join)
_keys = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_override_values = st.one_of(
    st.integers(-5, 5000), st.floats(-1, 1), st.booleans(), st.text(max_size=8)
)


def _optional(**strategies):
    return st.fixed_dictionaries({}, optional=strategies)


_models = st.one_of(
    st.fixed_dictionaries(
        {"preset": st.sampled_from(["tiny", "small", "base"])},
        optional={"overrides": st.dictionaries(_keys, _override_values, max_size=3)},
    ),
    st.fixed_dictionaries({"path": _rel_paths.map(lambda path: path + ".keras")}),
)
_modifiers = st.fixed_dictionaries(
    {"type": st.just("fuzz_modifier")}, optional={"strength": st.floats(0, 1)}
)
_stages = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True),
            "epochs": st.integers(1, 20),
        },
        optional={"modifiers": st.lists(_modifiers, max_size=2)},
    ),
    max_size=3,
    unique_by=lambda stage: stage["name"],
)


def _limits_for_task(recipe):
    # WER limits hold for G2P only; translation is held to BLEU.
    limits = recipe.get("assert")
    if recipe["task"]["name"] == "translation" and limits:
        if "max_wer_increase" in limits:
            limits["max_bleu_decrease"] = limits.pop("max_wer_increase")
    return recipe


_valid_recipes = st.fixed_dictionaries(
    {
        "version": st.just(1),
        "name": _run_names,
        "task": st.fixed_dictionaries(
            {"name": st.sampled_from(["g2p", "translation"])},
            optional={"max_examples": st.integers(1, 10**6)},
        ),
        "model": _models,
    },
    optional={
        "baseline": _optional(
            epochs=st.integers(0, 100),
            cache=st.booleans(),
            batch_size=st.integers(1, 4096),
            learning_rate=st.floats(1e-6, 1.0),
            warmup_steps=st.integers(0, 10_000),
        ),
        "distribute": _optional(
            strategy=st.sampled_from(["none", "mirrored", "multi_worker", "auto"])
        ),
        "precision": st.sampled_from(["float32", "mixed_float16", "mixed_bfloat16"]),
        "stages": _stages,
        "export": st.lists(st.sampled_from(EXPORT_FORMATS), unique=True),
        "benchmark": _optional(
            batch_sizes=st.lists(st.integers(1, 64), min_size=1, max_size=3),
            warmup=st.integers(0, 10),
            repeats=st.integers(1, 50),
        ),
        "assert": _optional(
            max_wer_increase=st.floats(0, 10),
            min_sparsity=st.floats(0, 1),
        ),
        "output_dir": _rel_paths,
    },
).map(_limits_for_task)
_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_junk_keys = st.one_of(st.text(max_size=10), st.integers(), st.booleans())


def _containers(data, path=()):
    """Yields (path, container) for every dict and non-empty list in `data`."""
    if isinstance(data, dict):
        children = data.items()
    elif isinstance(data, list):
        children = enumerate(data)
    else:
        return
    yield path, data
    for key, child in children:
        yield from _containers(child, (*path, key))


@st.composite
def _mutated_recipes(draw):
    recipe = copy.deepcopy(draw(_valid_recipes))
    for _ in range(draw(st.integers(1, 3))):
        _, container = draw(st.sampled_from(list(_containers(recipe))))
        keys = list(container) if isinstance(container, dict) else range(len(container))
        action = draw(st.sampled_from(["delete", "replace", "add"]))
        if action == "add" and isinstance(container, dict):
            container[draw(_junk_keys)] = draw(_junk)
        elif keys:
            key = draw(st.sampled_from(list(keys)))
            if action == "delete":
                del container[key]
            else:
                container[key] = draw(_junk)
    return recipe


@st.composite
def _broken_yaml(draw):
    text = yaml.safe_dump(draw(_valid_recipes), sort_keys=False)
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 5)))
        text = text[:start] + draw(st.text(max_size=4)) + text[end:]
    return text


# === Checks ===


def _parse_or_error(text_or_dict):
    """Returns a Recipe or a checked RecipeError message; anything else fails."""
    try:
        return parse_recipe(text_or_dict, source=SOURCE)
    except RecipeError as error:
        message = str(error)
        assert "\n" not in message and len(message.splitlines()) == 1, message
        assert message.startswith(f"{SOURCE}: "), message
        assert _LOCATED.match(message, len(SOURCE) + 2), message
        return message


@FUZZ
@given(_valid_recipes)
def test_valid_recipes_parse_and_round_trip(data):
    with temporary_modifier("fuzz_modifier", FuzzModifier):
        recipe = parse_recipe(data, source=SOURCE)
        dumped = recipe.model_dump(mode="json", by_alias=True)
        from_text = parse_recipe(yaml.safe_dump(data, sort_keys=False))
        assert from_text.model_dump(mode="json", by_alias=True) == dumped
        assert parse_recipe(dumped).model_dump(mode="json", by_alias=True) == dumped
    assert isinstance(recipe, Recipe) and recipe.name == data["name"]
    assert len(recipe.stages) == len(data.get("stages", []))


@FUZZ
@given(_mutated_recipes())
def test_mutated_recipes_give_recipe_or_one_line_error(data):
    with temporary_modifier("fuzz_modifier", FuzzModifier):
        _parse_or_error(data)
        _parse_or_error(yaml.safe_dump(data, sort_keys=False))


@FUZZ
@given(st.one_of(_broken_yaml(), st.text(max_size=200)))
def test_random_text_gives_recipe_or_one_line_error(text):
    with temporary_modifier("fuzz_modifier", FuzzModifier):
        _parse_or_error(text)


@FUZZ
@given(_mutated_recipes())
def test_tfaccel_validate_exits_0_or_2_with_one_line(data):
    import contextlib
    import io
    import pathlib
    import tempfile

    from tfaccel import cli

    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "recipe.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        out, err = io.StringIO(), io.StringIO()
        with (
            temporary_modifier("fuzz_modifier", FuzzModifier),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            code = cli.main(["validate", str(path)])
    if code == 0:
        assert "valid recipe" in out.getvalue() and not err.getvalue()
    else:
        assert code == 2, (code, err.getvalue())
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"tfaccel: error: {path}: ")
        assert _LOCATED.match(lines[0], len(f"tfaccel: error: {path}: "))
        assert "Traceback" not in err.getvalue()
