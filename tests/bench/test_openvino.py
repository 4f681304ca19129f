"""The OpenVINO peer (`tfaccel.bench.openvino`) on the lean ONNX graphs."""

import numpy as np
import pytest
from qat_checks import fit, tiny_model

from tfaccel.bench import openvino
from tfaccel.errors import UserError
from tfaccel.export import exporters, lean, lean_onnx

MAX_LENGTH = 8


def test_openvino_runs_the_lean_graphs_as_keras(tmp_path):
    model = fit(tiny_model(), steps=12)
    ids = np.random.default_rng(0).integers(3, 60, (6, 9)).astype("int32")
    ids[1, 5:] = 0
    reference = exporters.ReferenceRun(model, ids, ids.shape[1], MAX_LENGTH)
    lean_onnx.convert(lean.build(model, MAX_LENGTH + 1), tmp_path / "lean", "fp32")
    fp32 = openvino.OpenVINOLean(tmp_path / "lean", weights="fp32")
    assert fp32.runtime.startswith("OpenVINO 2026.")
    np.testing.assert_allclose(fp32.first_steps(ids), reference.logits, atol=1e-4)
    np.testing.assert_array_equal(fp32.generate(ids, MAX_LENGTH), reference.tokens)
    int8 = openvino.OpenVINOLean(tmp_path / "lean", weights="int8")
    # Weight-only int8 moves the logits a little, not a lot.
    difference = np.abs(int8.first_steps(ids) - reference.logits).max()
    assert 0 < difference < 0.1
    assert int8.generate(ids, MAX_LENGTH).shape == (6, MAX_LENGTH)
    # Saved as IR, the compressed weights take about a quarter of the bytes.
    sizes = {}
    for runner, name in ((fp32, "fp32"), (int8, "int8")):
        folder = runner.save(tmp_path / name)
        sizes[name] = (folder / "decode_step.bin").stat().st_size
    assert sizes["int8"] < 0.4 * sizes["fp32"]


def test_openvino_refuses_a_folder_without_lean_graphs(tmp_path):
    with pytest.raises(UserError, match="No lean ONNX folder") as error:
        openvino.OpenVINOLean(tmp_path)
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="Received: weights='int4'"):
        openvino.OpenVINOLean(tmp_path, weights="int4")
