"""tools/drive_litert.py and tools/drive_onnx.py: a decode loop from the
artifact alone, without tfaccel."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from qat_checks import fit, tiny_model

from tfaccel.export import lean, lean_onnx

TOOLS = Path(__file__).resolve().parents[2] / "tools"
MAX_LENGTH = 8


def _drive(tool, artifact, ids):
    """Runs the tool in a fresh interpreter; returns (exit code, last line,
    stderr), and fails if it imported tfaccel."""
    code = textwrap.dedent(
        f"""
        import runpy, sys
        sys.argv = [{str(tool)!r}, {str(artifact)!r}, "--ids", {ids!r}]
        try:
            runpy.run_path({str(tool)!r}, run_name="__main__")
        except SystemExit as done:
            code = done.code
        assert not any(m.startswith("tfaccel") for m in sys.modules), "tfaccel"
        sys.exit(code)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    lines = done.stdout.strip().splitlines()
    return done.returncode, lines[-1] if lines else "", done.stderr


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drive")
    model = fit(tiny_model(), steps=12)
    module = lean.build(model, MAX_LENGTH + 1)
    tflite_file = folder / "model_lean.tflite"
    tflite_file.write_bytes(lean.convert_tflite(module, "int8"))
    lean_onnx.convert(module, folder / "onnx_lean", "fp32")
    return tflite_file, folder / "onnx_lean"


@pytest.mark.parametrize("which", ["litert", "onnx"])
def test_the_drivers_reproduce_tfaccel_generation(artifacts, which):
    tflite_file, onnx_folder = artifacts
    if which == "litert":
        tool, artifact = TOOLS / "drive_litert.py", tflite_file
        runner = lean.LeanLiteRT(tflite_file)
    else:
        tool, artifact = TOOLS / "drive_onnx.py", onnx_folder
        runner = lean_onnx.LeanORT(onnx_folder)
    rng = np.random.default_rng(1)
    outputs = set()
    for length in (3, 5, 9):
        ids = rng.integers(3, 60, length).tolist()
        expected = runner.generate(np.array([ids], np.int32), MAX_LENGTH)[0]
        eos = np.flatnonzero(expected == 2)
        expected = expected[: eos[0] + 1] if eos.size else expected
        code, last, stderr = _drive(tool, artifact, ",".join(map(str, ids)))
        assert code == 0, stderr
        assert last == " ".join(map(str, expected))
        outputs.add(last)
    assert len(outputs) > 1  # the sources give different outputs


def test_the_drivers_refuse_bad_input_in_one_line(artifacts, tmp_path):
    tflite_file, onnx_folder = artifacts
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(b"\0" * 64)
    cases = [
        (TOOLS / "drive_litert.py", foreign, "1,2", "drive_litert: error: "),
        (TOOLS / "drive_litert.py", tflite_file, ",".join(["5"] * 100), "give 1 to"),
        (TOOLS / "drive_onnx.py", tmp_path, "5,6", "not a lean ONNX folder"),
        (TOOLS / "drive_onnx.py", onnx_folder, ",".join(["5"] * 100), "give 1 to"),
    ]
    for tool, artifact, ids, message in cases:
        code, _, stderr = _drive(tool, artifact, ids)
        assert code == 2, (tool.name, stderr)
        (line,) = stderr.strip().splitlines()
        assert message in line
