"""`tfaccel.export`: verified artifacts, versions, atomicity and clear errors."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from qat_checks import tiny_model

import tfaccel
from tfaccel.errors import ExportFailedError, UserError
from tfaccel.export import api, tensorrt

SOURCE, TARGET = 12, 8


def _visible(folder):
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith("."))


def _hidden(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_export_verifies_and_publishes_each_format(model, tmp_path):
    result = tfaccel.export(
        model,
        tmp_path / "g2p",
        formats=["saved_model", "tflite_fp32", "tflite_dynamic"],
        source_length=SOURCE,
        max_length=TARGET,
    )
    assert [a.format for a in result.artifacts] == [
        "saved_model",
        "tflite_fp32",
        "tflite_dynamic",
    ]
    assert _visible(tmp_path / "g2p") == [
        "1",
        "model_dynamic.tflite",
        "model_fp32.tflite",
    ]
    assert _hidden(tmp_path / "g2p") == []
    saved = result["saved_model"]
    assert saved.path == str(tmp_path / "g2p" / "1")
    assert saved.runtime.startswith("tensorflow")
    assert saved.max_difference <= 1e-3 and saved.agreement == 1.0
    lite = result["tflite_fp32"]
    assert lite.runtime.startswith("LiteRT")
    assert lite.bytes == (tmp_path / "g2p" / "model_fp32.tflite").stat().st_size
    assert lite.max_difference <= 1e-3 and lite.agreement == 1.0
    assert 0 < result["tflite_dynamic"].bytes < lite.bytes
    assert "tflite_dynamic" in str(result)
    # The runner of each artifact generates what Keras generates.
    ids = api._samples(model, None, SOURCE)[:4]
    for artifact in result.artifacts[:2]:
        runner = api.load(artifact.format, artifact.path)
        np.testing.assert_array_equal(
            runner.generate(ids, TARGET), model.generate(ids, TARGET)
        )


def test_saved_model_versions_are_never_overwritten(model, tmp_path):
    options = {"source_length": SOURCE, "max_length": TARGET}
    tfaccel.export(model, tmp_path, ["saved_model"], **options)
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / "1").rglob("*")}
    result = tfaccel.export(model, tmp_path, ["saved_model"], **options)
    assert result["saved_model"].path == str(tmp_path / "2")
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "1").rglob("*")} == first


def test_a_verification_mismatch_publishes_nothing(model, tmp_path):
    with pytest.raises(ExportFailedError, match=r"differ from Keras by .*nothing was"):
        tfaccel.export(
            model,
            tmp_path,
            ["tflite_fp32"],
            source_length=SOURCE,
            max_length=TARGET,
            atol=0.0,  # LiteRT's kernels round differently from TensorFlow's
        )
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ExportFailedError, match="nothing was published") as info:
        tfaccel.export(
            model,
            tmp_path,
            ["saved_model"],
            source_length=SOURCE,
            max_length=TARGET,
            min_agreement=1.01,  # unreachable
        )
    assert list(tmp_path.iterdir()) == []
    # The agreement failure names the argument that would accept it.
    assert "less than min_agreement=1.01" in info.value.failures["saved_model"]
    assert info.value.result.artifacts == []


def test_bad_input_gets_a_clear_error(model, tmp_path):
    with pytest.raises(UserError, match=r"Unknown export format 'tflite_int4'"):
        tfaccel.export(model, tmp_path, ["saved_model", "tflite_int4"])
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match=r"Cannot write exports to .*file/out"):
        tfaccel.export(model, blocker / "out", ["saved_model"])
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(UserError, match=r"Sequential has no encode, decode_step"):
        tfaccel.export(dense, tmp_path, ["saved_model"])
    with pytest.raises(UserError, match="tflite_int8 of a float model"):
        tfaccel.export(model, tmp_path, ["tflite_int8"])
    with pytest.raises(UserError, match=r"sample_inputs must be integer"):
        tfaccel.export(model, tmp_path, ["saved_model"], sample_inputs=np.ones(3))
    with pytest.raises(UserError, match=r"max_length must be in \[1, 47\]"):
        tfaccel.export(model, tmp_path / "new", ["saved_model"], max_length=48)
    with pytest.raises(UserError, match=r"source_length must be in \[1, 48\]"):
        tfaccel.export(model, tmp_path / "new", ["saved_model"], source_length=64)
    assert _visible(tmp_path) == ["file"]


def test_tensorrt_without_a_gpu_is_one_clear_line(model, tmp_path):
    ok, why = tensorrt.availability()
    if ok:
        pytest.skip("TensorRT and a GPU are present; tests/export/test_tensorrt.py")
    assert "\n" not in why and ("GPU" in why or "tfaccel[tensorrt]" in why)
    with pytest.raises(UserError, match="GPU|tfaccel.tensorrt"):
        tfaccel.export(model, tmp_path / "out", ["tflite_fp32", "tensorrt"])
    # Checked before any work: not even the folder was made.
    assert not (tmp_path / "out").exists()


KILLED_EXPORT = """
import pathlib, time
from qat_checks import tiny_model
import tfaccel
from tfaccel.export import saved_model

def stall(*args, **kwargs):
    pathlib.Path({marker!r}).write_text("verifying")
    time.sleep(120)

saved_model._verify = stall
tfaccel.export(tiny_model(), {out!r}, ["saved_model"], source_length=12, max_length=8)
"""


@pytest.mark.large
def test_a_killed_export_leaves_no_partial_version(model, tmp_path):
    out, marker = tmp_path / "g2p", tmp_path / "marker"
    script = KILLED_EXPORT.format(marker=str(marker), out=str(out))
    # The child imports the tests' helpers as pytest does: from tests/.
    tests = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": tests}
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert process.poll() is None, "the export died before verifying"
            assert time.monotonic() < deadline, "the export never reached verify"
            time.sleep(0.5)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    # The SavedModel was fully written but not verified: no version folder.
    assert _visible(out) == []
    assert len(_hidden(out)) == 1
    # The next export removes the dead process's leftovers and takes version 1.
    tfaccel.export(model, out, ["saved_model"], source_length=SOURCE, max_length=TARGET)
    assert _visible(out) == ["1"] and _hidden(out) == []


def test_fp16_and_dynamic_tflite_of_a_qat_model_are_refused():
    from tfaccel.errors import UserError
    from tfaccel.export.api import check_qat_formats

    check_qat_formats(["tflite_fp16", "tflite_dynamic"], qat=False)
    check_qat_formats(["tflite_fp32", "tflite_int8", "onnx"], qat=True)
    with pytest.raises(UserError, match="tflite_fp16 of a QAT model") as info:
        check_qat_formats(["tflite_int8", "tflite_fp16"], qat=True)
    assert "Export tflite_int8" in str(info.value)


def test_one_failing_format_does_not_stop_the_others(model, tmp_path):
    # Seven formats; the source vocabulary repeats a token, which only the
    # CTranslate2 format (it stores token strings) cannot hold.
    names = ["saved_model", "saved_model_lean", "tflite_fp32", "ctranslate2"]
    names += ["tflite_lean_fp32", "onnx", "onnx_lean"]
    source = ["<pad>", "<s>", "</s>", "a", "a"]
    target = [f"t{i}" for i in range(model.decoder_vocabulary_size)]
    with pytest.raises(ExportFailedError) as info:
        tfaccel.export(
            model,
            tmp_path,
            names,
            source_length=SOURCE,
            max_length=TARGET,
            vocabularies=(source, target),
        )
    error = info.value
    assert list(error.failures) == ["ctranslate2"]
    assert "vocabulary must be unique tokens" in error.failures["ctranslate2"]
    assert "\n" not in str(error) and "1 of 7 export formats failed" in str(error)
    published = [name for name in names if name != "ctranslate2"]
    assert [a.format for a in error.result.artifacts] == published
    assert _visible(tmp_path) == [
        "1",
        "model_fp32.tflite",
        "model_lean_fp32.tflite",
        "onnx",
        "onnx_lean",
        "saved_model_lean",
    ]
    assert _hidden(tmp_path) == []  # nothing half-written of the failed one
