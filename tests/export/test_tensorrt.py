"""TensorRT engines from the ONNX export; needs an NVIDIA GPU and TensorRT."""

from pathlib import Path

import numpy as np
import pytest
from qat_checks import tiny_model

from tfaccel.export import api, tensorrt

AVAILABLE, WHY = tensorrt.availability()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=WHY)


def test_engine_generates_what_keras_generates(tmp_path):
    model = tiny_model()
    result = api.export(model, tmp_path, ["tensorrt"], source_length=12, max_length=8)
    artifact = result["tensorrt"]
    assert artifact.runtime.startswith("TensorRT")
    assert sorted(p.name for p in Path(artifact.path).iterdir()) == [
        "decode_step.plan",
        "encode.plan",
    ]
    ids = api._samples(model, None, 12)[:4]
    runner = api.load("tensorrt", artifact.path)
    np.testing.assert_array_equal(runner.generate(ids, 8), model.generate(ids, 8))
