"""`tfaccel.export.formats`: one registry that every reader of formats uses."""

import subprocess
import sys

import numpy as np
import pytest
from cli_checks import assert_user_error

import tfaccel.export
from tfaccel.cli import main
from tfaccel.errors import UserError
from tfaccel.export import api, formats, generation
from tfaccel.export.runner import Runner
from tfaccel.recipe.loader import RecipeError, parse_recipe
from tfaccel.recipe.schema import EXPORT_FORMATS

RECIPE = "version: 1\nname: demo\ntask: {name: g2p}\nmodel: {preset: small}\n"


def _fake_runner(path, **options):
    return {"path": path, **options}


@pytest.fixture
def extra_format():
    """A format registered for one test, then removed."""
    fmt = formats.register(
        formats.Format(
            "test_only",
            runtime="onnxruntime",
            artifact="test_only",
            verified_by="tokens",
            exporter=f"{__name__}:_fake_runner",
            runner=f"{__name__}:_fake_runner",
            threads=True,
            qat="refuse",
            qat_reason="is a test format",
        )
    )
    yield fmt
    formats.unregister(fmt.name)
    assert "test_only" not in formats.names()


def test_every_format_round_trips_through_get_and_names():
    names = formats.names()
    assert len(names) == len(set(names)) and "saved_model" in names
    for name in names:
        fmt = formats.get(name)
        assert fmt.name == name
        assert name in formats.names(runtime=fmt.runtime, verified_by=fmt.verified_by)
    made = formats.names(made_by="export") + formats.names(made_by="recipe")
    assert sorted(made) == sorted(names)
    assert formats.names(made_by="recipe") == ("keras", "keras_int8")


def test_every_recipe_made_format_has_a_writer_in_publish():
    from tfaccel.recipe import publish

    assert set(publish._RECIPE_WRITERS) == set(formats.names(made_by="recipe"))


def test_unknown_format_names_the_allowed_ones():
    with pytest.raises(UserError, match="Use any of: saved_model, tflite_fp32") as info:
        formats.get("tflite_int4")
    assert str(info.value).endswith("Received: format='tflite_int4'")
    with pytest.raises(TypeError, match="colour"):
        formats.names(colour="red")


def test_a_format_is_checked_when_it_is_made():
    with pytest.raises(ValueError, match="verified_by"):
        formats.Format("x", runtime="keras", artifact="x", verified_by="eyes")
    with pytest.raises(ValueError, match="qat_reason"):
        formats.Format(
            "x", runtime="keras", artifact="x", verified_by="tokens", qat="refuse"
        )
    with pytest.raises(ValueError, match="exporter"):
        formats.Format("x", runtime="keras", artifact="x", verified_by="tokens")
    with pytest.raises(ValueError, match="already registered"):
        formats.register(formats.get("onnx"))


def test_every_reader_lists_exactly_the_registry():
    exported = formats.names(made_by="export")
    assert tfaccel.export.FORMATS == exported
    assert EXPORT_FORMATS == formats.names()
    assert api.TFLITE_FORMATS == formats.names(runtime="litert")
    assert api.FLOAT_FORMATS == (
        "saved_model",
        "tflite_fp32",
        "onnx",
        "tensorrt",
        "tflite_lean_fp32",
        "saved_model_lean",
        "onnx_lean",
        "ctranslate2",
    )
    assert api.QAT_REDUNDANT == ("tflite_fp16", "tflite_dynamic")
    assert api._check_formats(list(exported)) == list(exported)
    with pytest.raises(UserError, match=", ".join(exported)):
        api._check_formats(["keras"])  # the recipe runner's, not tfaccel.export's


def test_cli_rejects_a_format_outside_the_registry(capsys):
    code = main(["export", "m.keras", "--formats", "onnx,keras", "--out", "x"])
    exported = ", ".join(formats.names(made_by="export"))
    assert_user_error(
        code,
        capsys.readouterr().err,
        "Unknown export format 'keras'",
        exported,
        "Received: --formats onnx,keras",
    )


def test_recipe_with_an_unknown_format_names_the_allowed_ones():
    with pytest.raises(RecipeError) as info:
        parse_recipe(RECIPE + "export: [onnx, tflite_int4]\n", source="r.yaml")
    message = str(info.value)
    assert "export[1]" in message and "got 'tflite_int4'" in message
    for name in formats.names():
        assert f"'{name}'" in message
    recipe = parse_recipe(RECIPE + f"export: [{', '.join(formats.names())}]\n")
    assert tuple(recipe.export) == formats.names()


def test_a_registered_format_joins_the_export_lists(extra_format, capsys):
    # The recipe schema's Literal is built once, when it is imported, so a
    # format registered later joins tfaccel.export and the CLI only.
    assert tfaccel.export.FORMATS[-1] == "test_only"
    assert api._check_formats(["test_only"]) == ["test_only"]
    code = main(["export", "no/model.keras", "--formats", "test_only", "--out", "x"])
    # Past the format check: the missing model is the error now.
    assert_user_error(code, capsys.readouterr().err, "No model at 'no/model.keras'")
    code = main(["export", "no/model.keras", "--formats", "tflite_int4", "--out", "x"])
    assert_user_error(
        code, capsys.readouterr().err, "ctranslate2_int8_float32, test_only."
    )
    assert api.load("test_only", "a/b", threads=3) == {"path": "a/b", "num_threads": 3}
    assert api.load("test_only", "a/b") == {"path": "a/b"}


def test_qat_rule_comes_from_the_registry(extra_format):
    assert formats.get("tflite_int8").qat == "int8"
    assert formats.qat_refused(["onnx", "tflite_fp16", "test_only"]) == [
        "tflite_fp16",
        "test_only",
    ]
    formats.check_qat(["tflite_fp16", "tflite_dynamic"], qat=False)
    formats.check_qat(["tflite_fp32", "tflite_int8", "onnx"], qat=True)
    with pytest.raises(UserError, match="tflite_fp16 of a QAT model") as info:
        api.check_qat_formats(["tflite_int8", "tflite_fp16"], qat=True)
    message = str(info.value)
    assert "\n" not in message and message.endswith("formats=['tflite_fp16']")
    with pytest.raises(UserError, match="test_only of a QAT model is a test format"):
        formats.check_qat(["test_only"], qat=True)
    with pytest.raises(RecipeError, match="tflite_fp16 of a QAT model would be"):
        parse_recipe(
            RECIPE + "stages: [{name: q, epochs: 1, modifiers: "
            "[{type: quantization_aware}]}]\nexport: [tflite_int8, tflite_fp16]\n"
        )


def test_format_load_passes_threads_only_to_runners_that_take_them():
    keras = formats.get("keras")
    assert not keras.threads and keras.runner == "tfaccel.models:load_model"
    assert formats.get("tflite_int8").threads and formats.get("onnx").threads
    assert not formats.get("saved_model").threads


class _ToyRunner(Runner):
    """Two numpy "signatures": logits favour token (index + 3) until EOS."""

    def __init__(self, vocab=9, length=6):
        def encode(encoder_token_ids):
            ids = np.asarray(encoder_token_ids)
            return {"cross_cache": ids[:, None].astype(np.float32), "encoder_mask": ids}

        def decode(token_ids, index, self_cache, cross_cache, encoder_mask):
            logits = np.zeros((len(token_ids), vocab), np.float32)
            logits[:, min(int(index) + 3, vocab - 1)] = 1.0
            logits[encoder_mask[:, 0] == int(index), 2] = 2.0  # EOS there
            return {"logits": logits, "self_cache": self_cache + 1}

        super().__init__(encode, decode, (1, 2, length, 1, 1), source_length=4)


def test_runner_base_decodes_as_the_shared_loop():
    runner = _ToyRunner()
    assert runner.target_length == 6 and runner.source_length == 4
    ids = np.array([[2, 5], [9, 1]], np.int32)
    for max_length, stop in ((None, True), (3, True), (None, False)):
        expected = generation.generate_with_signatures(
            runner._encode, runner._decode, ids, max_length, 4, (1, 2, 6, 1, 1), stop
        )
        np.testing.assert_array_equal(runner.generate(ids, max_length, stop), expected)
    np.testing.assert_array_equal(runner.generate(ids)[0], [3, 4, 2, 0, 0, 0])
    assert runner.first_steps(np.zeros((2, 4), np.int32)).shape == (4, 9)


# Runners whose runtime runs the greedy loop itself: the lean graph's
# `generate` signature, and CTranslate2's `translate_batch`.
OWN_LOOP = {"tflite_lean", "tflite_lean_fp32", "onnx_lean", "onnx_lean_int8"}
OWN_LOOP |= {"saved_model_lean"} | {
    name for name in formats.names() if name.startswith("ctranslate2")
}


def test_every_exported_runner_is_a_runner():
    for name in formats.names(made_by="export"):
        module, _, cls = formats.get(name).runner.partition(":")
        runner = getattr(__import__(module, fromlist=[cls]), cls)
        if name in OWN_LOOP:
            assert callable(runner.generate) and callable(runner.first_steps), name
            continue
        assert issubclass(runner, Runner), name
        assert "generate" not in vars(runner), name  # the base class owns it


def test_formats_and_schema_import_no_tensorflow():
    code = (
        "import sys, tfaccel.export.formats, tfaccel.recipe.schema; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
