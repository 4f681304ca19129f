"""Tests for tfaccel.recipe.loader: parsing and one-line error messages."""

import os
import pathlib

import pytest

from tfaccel.errors import UserError
from tfaccel.recipe.loader import (
    RecipeError,
    load_recipe,
    parse_recipe,
    validate_recipe_file,
)
from tfaccel.recipe.schema import Recipe

SOURCE = "recipes/x.yaml"
MINIMAL = """\
version: 1
name: demo
task: {name: g2p}
model: {preset: small}
"""


def _error(text, source=SOURCE):
    with pytest.raises(RecipeError) as info:
        parse_recipe(text, source=source)
    message = str(info.value)
    assert "\n" not in message and len(message.splitlines()) == 1, message
    assert message.startswith(f"{source}: "), message
    return message


def test_minimal_recipe_gets_defaults():
    recipe = parse_recipe(MINIMAL)
    assert isinstance(recipe, Recipe)
    assert (recipe.version, recipe.name) == (1, "demo")
    assert (recipe.task.name, recipe.task.max_examples) == ("g2p", None)
    assert (recipe.model.preset, recipe.model.path) == ("small", None)
    assert recipe.baseline.epochs == 12 and recipe.baseline.cache is True
    assert recipe.baseline.batch_size == 128
    assert recipe.baseline.learning_rate == 0.002
    assert recipe.distribute.strategy == "none"
    assert recipe.precision == "float32"
    assert recipe.stages == [] and recipe.export == []
    assert recipe.benchmark is None and recipe.assert_ is None
    assert recipe.verify.min_agreement == 0.9  # tfaccel.export's default
    assert recipe.output_dir == "savedmodels"


def test_full_recipe_without_modifiers():
    text = MINIMAL + (
        "baseline: {epochs: 3, cache: false, learning_rate: 1e-3, warmup_steps: 50}\n"
        "distribute: {strategy: mirrored}\n"
        "precision: mixed_bfloat16\n"
        "stages:\n  - {name: finetune, epochs: 2}\n"
        "export: [saved_model, tflite_int8, onnx]\n"
        "benchmark: {batch_sizes: [1, 16]}\n"
        "assert: {max_wer_increase: 1.0, min_sparsity: 0.5}\n"
        "output_dir: out/runs\n"
    )
    recipe = parse_recipe(text)
    assert recipe.baseline.learning_rate == pytest.approx(1e-3)  # YAML reads a str
    assert recipe.stages[0].name == "finetune" and recipe.stages[0].modifiers == []
    assert recipe.export == ["saved_model", "tflite_int8", "onnx"]
    assert (recipe.benchmark.warmup, recipe.benchmark.repeats) == (5, 30)
    assert recipe.assert_.min_sparsity == 0.5
    assert recipe.model_dump(by_alias=True)["assert"]["max_wer_increase"] == 1.0


def test_parse_accepts_a_dict_and_empty_lists_as_null():
    data = {"version": 1, "name": "d", "task": {"name": "translation"}}
    data |= {"model": {"path": "savedmodels/base/model.keras"}, "stages": None}
    recipe = parse_recipe(data)
    assert recipe.model.path == "savedmodels/base/model.keras"
    assert recipe.stages == []


MALFORMED = [
    # (addition or replacement, key path, words the message must contain)
    ("foo: 1\n", "foo", ["unknown key", "got 1", "allowed: version, name, task"]),
    (
        "baseline: {epoch: 3}\n",
        "baseline.epoch",
        ["unknown key (did you mean 'epochs'?)", "allowed: epochs, cache"],
    ),
    ("baseline: {epochs: '3'}\n", "baseline.epochs", ["valid integer", "got '3'"]),
    ("baseline: {batch_size: true}\n", "baseline.batch_size", ["got True"]),
    (
        "distribute: {strategy: tpu}\n",
        "distribute.strategy",
        ["got 'tpu'", "allowed: 'none', 'mirrored', 'multi_worker' or 'auto'"],
    ),
    ("precision: fp8\n", "precision", ["allowed: 'float32', 'mixed_float16'"]),
    ("export: [onnx, tflite_int9]\n", "export[1]", ["got 'tflite_int9'", "'keras'"]),
    ("export: [onnx, onnx]\n", "export", ["'onnx' repeats"]),
    ("output_dir: /tmp/out\n", "output_dir", ["absolute", "got '/tmp/out'"]),
    ("output_dir: a/../../b\n", "output_dir", ["'..'"]),
    ("output_dir: 'a\\b'\n", "output_dir", ["separator"]),
    ("assert: {min_sparsity: 2}\n", "assert.min_sparsity", ["less than or equal"]),
    (
        "stages: [{name: q, epochs: 1, modifiers: [{type: quantization_aware}]}]\n"
        "export: [tflite_int8, tflite_dynamic]\n",
        "export",
        ["tflite_dynamic of a QAT model would be the full-int8 model", "tflite_int8"],
    ),
    (
        "task: {name: translation}\nassert: {max_wer_increase: 1}\n",
        "assert",
        ["max_wer_increase does not apply to the translation task"],
    ),
    (
        "stages: [{name: a, epochs: 1}, {name: a, epochs: 2}]\n",
        "stages",
        ["'a' repeats"],
    ),
    ("stages: [{name: a, epochs: 0}]\n", "stages[0].epochs", ["greater than"]),
    ("stages: [{name: a}]\n", "stages[0].epochs", ["required key is missing"]),
    (
        "stages: [{name: a, epochs: 1, modifiers: [5]}]\n",
        "stages[0].modifiers[0]",
        ["mapping with a 'type' key", "got 5"],
    ),
    (
        "stages: [{name: a, epochs: 1, modifiers: "
        "[{type: distillation}, {type: distillation, alpha: 0.1}]}]\n",
        "stages[0].modifiers",
        ["one teacher"],
    ),
    (
        "stages: [{name: a, epochs: 1, modifiers: [{type: shrink}]}]\n",
        "stages[0].modifiers[0]",
        ["at least one of 'heads', 'ffn' or 'layers'"],
    ),
    (
        "stages: [{name: a, epochs: 1, modifiers: "
        "[{type: low_rank, targets: [x], energy: 1.5}]}]\n",
        "stages[0].modifiers[0].energy",
        ["less than or equal to 1"],
    ),
    ("benchmark: {batch_sizes: []}\n", "benchmark.batch_sizes", ["at least 1"]),
    ("verify: {min_agreement: 1.5}\n", "verify.min_agreement", ["less than or equal"]),
    ("task: {name: g2p, max_examples: 0}\n", "task.max_examples", ["greater than 0"]),
]


@pytest.mark.parametrize("extra, path, words", MALFORMED)
def test_malformed_recipe_names_key_path(extra, path, words):
    key = extra.split(":")[0]
    text = "".join(
        line for line in MINIMAL.splitlines(True) if line.split(":")[0] != key
    )
    message = _error(text + extra)
    assert message.startswith(f"{SOURCE}: {path}: "), message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    "old, new, path, words",
    [
        ("version: 1", "version: 2", "version", ["unsupported", "got 2; allowed: 1"]),
        ("version: 1", "version: true", "version", ["got True"]),
        ("name: demo", "name: a..b", "name", ["got 'a..b'", "without '..'"]),
        ("name: demo", "name: a/b", "name", ["not a valid run name"]),
        ("name: demo", "name: Demo", "name", ["[a-z0-9][a-z0-9._-]*"]),
        ("{preset: small}", "{path: ../m.keras}", "model.path", ["'..'"]),
        ("{preset: small}", "{path: /m.keras}", "model.path", ["absolute"]),
        ("{preset: small}", "{path: m.h5}", "model.path", [".keras file"]),
        ("{preset: small}", "{preset: small, path: m.keras}", "model", ["exactly"]),
        ("{preset: small}", "{}", "model", ["exactly one of 'preset' or 'path'"]),
        ("{preset: small}", "{preset: huge}", "model.preset", ["'tiny'"]),
        (
            "{preset: small}",
            "{preset: small, overrides: {num_layers: [2]}}",
            "model.overrides.num_layers",
            ["number, bool or string", "got [2]"],
        ),
        ("task: {name: g2p}\n", "", "task", ["required key is missing"]),
        ("task: {name: g2p}", "task: g2p", "task", ["should be a mapping"]),
    ],
)
def test_replaced_value_names_key_path(old, new, path, words):
    message = _error(MINIMAL.replace(old, new))
    assert message.startswith(f"{SOURCE}: {path}: "), message
    for word in words:
        assert word in message, message


def test_unknown_modifier_lists_registered_types():
    text = MINIMAL + (
        "stages:\n"
        "  - name: prune\n"
        "    epochs: 4\n"
        "    modifiers:\n"
        "      - type: no_such_modifier\n"
        '        targets: ["re:.*kernel"]\n'
    )
    message = _error(text)
    assert message.startswith(
        f"{SOURCE}: stages[0].modifiers[0].type: unknown modifier type "
        "'no_such_modifier'; registered types: "
    ), message


def test_several_errors_are_all_listed_on_one_line():
    text = MINIMAL + "baseline: {epochs: -1, batch_size: 0, cache: 3}\n"
    message = _error(text)
    assert message.startswith(f"{SOURCE}: baseline.epochs: "), message
    assert "\n" not in message
    parts = message.removeprefix(f"{SOURCE}: ").split(" | ")
    found = {part.split(":")[0]: part for part in parts}
    assert set(found) == {"baseline.epochs", "baseline.batch_size", "baseline.cache"}
    assert "got -1" in found["baseline.epochs"], message
    assert "got 0" in found["baseline.batch_size"], message
    assert "got 3" in found["baseline.cache"], message


def test_long_bad_value_is_truncated():
    message = _error(MINIMAL.replace("name: demo", "name: " + "X" * 500))
    got = message.split("got ")[1].split(";")[0]
    assert len(got) <= 60 and "..." in got, message


def test_yaml_syntax_error_gives_line_and_column():
    message = _error(MINIMAL + "stages: [\n  - {name: a\n")
    assert "YAML syntax error at line " in message, message
    message = _error("version: 1\nname: demo\n  task: x\n")
    assert message == (
        f"{SOURCE}: YAML syntax error at line 3, column 7: "
        "mapping values are not allowed here"
    )


def test_duplicate_key_is_refused():
    message = _error(MINIMAL + "baseline: {epochs: 3, epochs: 4}\n")
    assert message == (
        f"{SOURCE}: baseline.epochs: duplicate key at line 5; "
        "each key may appear once in a mapping"
    )


def test_unsafe_yaml_tags_are_refused():
    message = _error(MINIMAL + "x: !!python/object/apply:os.system ['true']\n")
    assert "YAML syntax error" in message and "python/object" in message, message


@pytest.mark.parametrize(
    "text, words",
    [
        ("- 1\n- 2\n", ["(top level): should be a mapping", "got [1, 2]"]),
        ("just a string\n", ["(top level)", "got 'just a string'", "allowed: version"]),
        ("", ["(top level): the recipe is empty"]),
        ("when: 2024-13-45\n", ["YAML error: month must be in 1..12"]),
    ],
)
def test_not_a_mapping(text, words):
    message = _error(text)
    for word in words:
        assert word in message, message


def test_error_is_a_user_error():
    assert issubclass(RecipeError, UserError) and issubclass(RecipeError, ValueError)


# === Files ===


def test_load_recipe_from_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pathlib.Path("r.yaml").write_text(MINIMAL, encoding="utf-8")
    assert load_recipe("r.yaml").name == "demo"
    assert validate_recipe_file(tmp_path / "r.yaml").name == "demo"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(RecipeError, match=r"nope\.yaml: recipe file not found$"):
        load_recipe(path)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(RecipeError, match="is a directory, not a recipe file"):
        load_recipe(tmp_path)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(MINIMAL.encode() + "# caf\xe9\n".encode("latin-1"))
    offset = len(MINIMAL) + len("# caf")
    with pytest.raises(
        RecipeError, match=rf"not UTF-8 text \(bad byte at offset {offset}\)"
    ):
        load_recipe(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    path.chmod(0)
    with pytest.raises(RecipeError, match="cannot read recipe file: Permission"):
        load_recipe(path)


def test_file_error_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pathlib.Path("bad.yaml").write_text(MINIMAL + "foo: 1\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"^bad\.yaml: foo: unknown key"):
        load_recipe("bad.yaml")
