"""The lean graphs (`tfaccel.export.lean`) as ONNX, run in ONNX Runtime.

The same `LeanModule` that becomes a `.tflite` file is converted by
tf2onnx, one file per signature: `encode.onnx`, `decode_step.onnx`,
`init_cache.onnx` and `generate.onnx` (the whole greedy loop, an ONNX
`Loop`). Every file keeps the decoding contract in its `metadata_props`
(key `tfaccel.contract`).
With `weights="int8"`, ONNX Runtime's `quantize_dynamic` stores the
step's and the encoder's matmul weights as int8 (`tfaccel.export.onnx_int8`).
That folder has no `generate.onnx`: tf2onnx passes the weights into the
`Loop` body as loop-carried values, not initializers, so the quantizer
leaves the loop's matmuls float; `LeanORT` drives `decode_step.onnx` from
Python instead (the contract lists the signatures a folder has).

An ONNX graph output may not share an input's name, so `decode_step.onnx`
returns the updated caches as `updated_self_k_<i>` and `updated_self_v_<i>`;
`LeanORT` maps them back.
"""

import json
import pathlib

from tfaccel._io import atomic_file, scratch_dir
from tfaccel.errors import UserError
from tfaccel.export.lean_runner import (
    CONTRACT,
    DECODE_STEP,
    ENCODE,
    INIT_CACHE,
    SIGNATURES,
    LeanRunner,
)

FILES = {name: f"{name}.onnx" for name in SIGNATURES}
_UPDATED = "updated_"


def convert(lean, folder, weights="fp32", opset=None):
    """Writes a `LeanModule`'s signatures as ONNX files into `folder`.

    Args:
        lean: a `tfaccel.export.lean.LeanModule`.
        folder: the folder to write (created if needed).
        weights: `"fp32"`, or `"int8"` (ONNX Runtime dynamic quantization).
        opset: the ONNX opset; None for `tfaccel.export.onnx.OPSET`.

    Raises:
        UserError: tf2onnx cannot convert a signature, or a graph does not
            load in ONNX Runtime.
    """
    import onnx

    from tfaccel.export import onnx as onnx_export

    if weights not in ("fp32", "int8"):
        raise ValueError(f"weights must be 'fp32' or 'int8'. Received: {weights!r}")
    opset = opset or onnx_export.OPSET
    contract = lean.contract()
    names = SIGNATURES if weights == "fp32" else (ENCODE, DECODE_STEP, INIT_CACHE)
    contract["signatures"] = list(names)
    contract = json.dumps(contract, sort_keys=True)
    protos = {name: _convert(lean, name, opset) for name in names}
    if weights == "int8":
        protos = _quantized(protos)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, proto in protos.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = CONTRACT, contract
        onnx.checker.check_model(proto)
        onnx_export._session(proto.SerializeToString())  # loads, or raises
        with atomic_file(folder / FILES[name]) as tmp:
            tmp.write_bytes(proto.SerializeToString())
    return {name: str(folder / file) for name, file in FILES.items()}


def _convert(lean, name, opset):
    import tensorflow as tf
    import tf2onnx

    from tfaccel.export import onnx as onnx_export

    function = getattr(lean.module, name)

    def renamed(*args):
        outputs = function(*args)
        return {
            (_UPDATED + key if key.startswith("self_") else key): value
            for key, value in outputs.items()
        }

    signature = function.input_signature
    wrapped = tf.function(renamed, input_signature=signature, autograph=False)
    try:
        with onnx_export._quiet_tf2onnx():
            proto, _ = tf2onnx.convert.from_function(
                wrapped, input_signature=signature, opset=opset
            )
    except Exception as error:
        raise UserError(
            f"tf2onnx failed to convert the lean signature '{name}': "
            f"{onnx_export._first_line(error)} Export tflite_lean instead. "
            f"Received: opset={opset}"
        ) from error
    return proto


def _quantized(protos):
    import onnx

    from tfaccel.export import onnx_int8

    out = {}
    with scratch_dir("lean-onnx-int8") as tmp:
        tmp = pathlib.Path(tmp)
        for name, proto in protos.items():
            path = tmp / FILES[name]
            path.write_bytes(proto.SerializeToString())
            out[name] = onnx_int8._quantize_one(path, tmp, per_channel=True)
            onnx.checker.check_model(out[name])
    return out


class LeanORT(LeanRunner):
    """A lean ONNX folder run in ONNX Runtime.

    Args:
        folder: the folder `convert` wrote.
        num_threads: intra-op threads of each session.
        loop: as `tfaccel.export.lean.LeanRunner`.
    """

    def __init__(self, folder, num_threads=1, loop="graph"):
        import onnxruntime

        from tfaccel.export import onnx as onnx_export

        folder = pathlib.Path(folder)
        needed = [FILES[ENCODE], FILES[DECODE_STEP]]
        missing = [f for f in needed if not (folder / f).is_file()]
        if missing:
            raise UserError(
                f"No lean ONNX export at '{folder}' (missing {', '.join(missing)}). "
                f"Received: folder={str(folder)!r}"
            )
        sessions = {
            name: onnx_export._session(str(folder / file), num_threads)
            for name, file in FILES.items()
            if (folder / file).is_file()
        }
        meta = sessions[ENCODE].get_modelmeta().custom_metadata_map
        contract = json.loads(meta[CONTRACT])
        self.runtime = f"ONNX Runtime {onnxruntime.__version__}"
        calls = {name: _call(session) for name, session in sessions.items()}
        super().__init__(calls, contract, loop)


def _call(session):
    import numpy as np

    types = {"tensor(int32)": np.int32, "tensor(bool)": np.bool_}
    dtypes = {i.name: types.get(i.type, np.float32) for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    keys = [n.removeprefix(_UPDATED) for n in names]

    def call(**inputs):
        feed = {k: np.asarray(v, dtypes[k]) for k, v in inputs.items()}
        return dict(zip(keys, session.run(names, feed), strict=True))

    return call
