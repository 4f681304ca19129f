"""Reading `.tflite` files: their operators, tensor types and stored bytes.

`op_report` lists what each operator computes in (which ops a conversion
left float, how a weight is quantized, how sparse or clustered its int8
values are); `stored_bytes` sums the constant data by type. Both read the
flatbuffer with TensorFlow's schema module, imported when called.
`tfaccel.export.tflite` re-exports them.
"""

import pathlib

import numpy as np


def op_report(tflite):
    """Lists every operator of a `.tflite` model with its tensor types.

    Args:
        tflite: the flatbuffer bytes, or a path.

    Returns:
        A list of dicts with keys `subgraph` (signature name when known),
        `op` (e.g. `"FULLY_CONNECTED"`), `inputs` and `outputs` (tensor type
        names such as `"INT8"`), `weight_scales`: how many scales the second
        input has (per-channel when > 1), or 0, and `weight_zeros`: the
        fraction of zeros in the second input when it is a stored int8
        constant, else None, and `weight_distinct`: how many different int8
        values that constant holds (clustering), else None.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    data = (
        pathlib.Path(tflite).read_bytes() if not isinstance(tflite, bytes) else tflite
    )
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    op_names = {
        v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")
    }
    type_names = {
        v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")
    }
    names = {}
    for signature in model.signatureDefs or []:
        names[signature.subgraphIndex] = signature.signatureKey.decode()
    rows = []
    for index, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = op_names.get(
                max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM"
            )
            tensors = [subgraph.tensors[i] if i >= 0 else None for i in op.inputs]
            weight = tensors[1] if len(tensors) > 1 else None
            scales = 0
            if weight is not None and weight.quantization is not None:
                scales = (
                    0
                    if weight.quantization.scale is None
                    else len(weight.quantization.scale)
                )
            zeros = distinct = None
            if weight is not None and type_names[weight.type] == "INT8":
                buffer = model.buffers[weight.buffer].data
                if buffer is not None and len(buffer):
                    values = np.asarray(buffer)
                    zeros = float(np.mean(values == 0))
                    distinct = int(len(np.unique(values)))
            rows.append(
                {
                    "subgraph": names.get(index, str(index)),
                    "op": name,
                    "inputs": [
                        type_names[t.type] if t is not None else None for t in tensors
                    ],
                    "outputs": [
                        type_names[subgraph.tensors[i].type] for i in op.outputs
                    ],
                    "weight_scales": scales,
                    "weight_zeros": zeros,
                    "weight_distinct": distinct,
                }
            )
    return rows


def stored_bytes(tflite):
    """Bytes of constant tensor data in a `.tflite` model, by tensor type.

    Args:
        tflite: the flatbuffer bytes, or a path.

    Returns:
        A dict such as `{"INT8": 1391489, "FLOAT32": 48788, "INT32": 34376}`;
        each buffer is counted once even if several tensors share it.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    data = (
        pathlib.Path(tflite).read_bytes() if not isinstance(tflite, bytes) else tflite
    )
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    type_names = {
        v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")
    }
    seen, sizes = set(), {}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            buffer = model.buffers[tensor.buffer].data
            if buffer is None or not len(buffer) or tensor.buffer in seen:
                continue
            seen.add(tensor.buffer)
            name = type_names[tensor.type]
            sizes[name] = sizes.get(name, 0) + len(buffer)
    return sizes
