"""OpenVINO as a peer: the lean ONNX graphs run by OpenVINO's CPU plugin.

OpenVINO (`pip install "tfaccel[openvino]"`) reads the `onnx_lean` folder
that `tfaccel.export.lean_onnx.convert` writes (float32), and NNCF's
`compress_weights` stores the matmul weights as int8, symmetric, per output
channel: the path OpenVINO documents for weight-only int8. Activations stay
float32 (`INFERENCE_PRECISION_HINT`; the kernels expand the int8 weights),
where tfaccel's `tflite_lean` quantizes each activation row per call: both
store int8 weights, and neither uses trained activation ranges.

This is a benchmark peer (`tools/peers.py`, `tools/lean_speed.py`), not an
export format: a user who picks OpenVINO converts tfaccel's ONNX themselves.
Python drives `decode_step`; the ONNX `Loop` of `generate.onnx` is not used.
"""

import json
import logging
import pathlib

from tfaccel.errors import UserError
from tfaccel.export.lean_runner import (
    CONTRACT,
    DECODE_STEP,
    ENCODE,
    INIT_CACHE,
    LeanRunner,
)

WEIGHTS = ("int8", "fp32")


def check_available():
    """Raises a one-line `UserError` when OpenVINO or NNCF is missing."""
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as error:
        raise UserError(
            "The OpenVINO peer needs OpenVINO and NNCF: pip install "
            f"'tfaccel[openvino]'. Received: {error.name} not installed"
        ) from None


class OpenVINOLean(LeanRunner):
    """An `onnx_lean` folder compiled by OpenVINO for the CPU.

    Args:
        folder: a float32 lean ONNX folder (`encode.onnx`, `decode_step.onnx`,
            `init_cache.onnx`).
        num_threads: OpenVINO's inference threads.
        weights: `"int8"` (NNCF weight compression) or `"fp32"`.
    """

    def __init__(self, folder, num_threads=1, weights="int8"):
        check_available()
        import nncf
        import onnx
        import openvino

        nncf.set_log_level(logging.ERROR)  # its per-model tables and bars

        if weights not in WEIGHTS:
            raise UserError(
                f"weights must be one of {', '.join(WEIGHTS)}. "
                f"Received: weights={weights!r}"
            )
        folder = pathlib.Path(folder)
        files = {name: folder / f"{name}.onnx" for name in (ENCODE, DECODE_STEP)}
        missing = [str(f) for f in files.values() if not f.is_file()]
        if missing:
            raise UserError(
                f"No lean ONNX folder at '{folder}' (missing {', '.join(missing)}). "
                f"Export onnx_lean first. Received: folder={str(folder)!r}"
            )
        if (folder / f"{INIT_CACHE}.onnx").is_file():
            files[INIT_CACHE] = folder / f"{INIT_CACHE}.onnx"
        meta = onnx.load(str(files[ENCODE]), load_external_data=False).metadata_props
        contract = json.loads({entry.key: entry.value for entry in meta}[CONTRACT])
        core = openvino.Core()
        config = {
            "INFERENCE_NUM_THREADS": int(num_threads),
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
        }
        calls, self.models = {}, {}
        for name, path in files.items():
            model = core.read_model(str(path))
            if weights == "int8" and name != INIT_CACHE:
                model = nncf.compress_weights(
                    model, mode=nncf.CompressWeightsMode.INT8_SYM
                )
            self.models[name] = model
            calls[name] = _call(core.compile_model(model, "CPU", config))
        self.runtime = f"OpenVINO {openvino.__version__}"
        self.weights = weights
        super().__init__(calls, contract, loop="python")

    def save(self, folder):
        """Writes the compiled graphs as OpenVINO IR (`<signature>.xml` and
        `.bin`, the int8 weights as stored) into `folder`; returns it."""
        import openvino

        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, model in self.models.items():
            openvino.save_model(model, str(folder / f"{name}.xml"), False)
        return folder


def _call(compiled):
    import numpy as np

    request = compiled.create_infer_request()
    inputs = {port.get_any_name(): port for port in compiled.inputs}
    types = {name: port.get_element_type().to_dtype() for name, port in inputs.items()}
    outputs = [(port, port.get_any_name()) for port in compiled.outputs]

    def call(**feed):
        feed = {k: np.asarray(v, types[k]) for k, v in feed.items()}
        result = request.infer(feed)
        return {
            name.removeprefix("updated_"): np.array(result[port])
            for port, name in outputs
        }

    return call
