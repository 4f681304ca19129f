"""ONNX int8: an ONNX export folder quantized by ONNX Runtime (dynamic).

The `onnx_int8` format: `tfaccel.export.onnx.convert` writes the fp32
graphs, `quantize_dynamic` here stores their weights as int8, and
`tfaccel.export.onnx.ORTModel` runs the result like the fp32 folder.
"""

import importlib.util
import pathlib

from tfaccel._io import scratch_dir
from tfaccel.export import onnx as onnx_export


def quantize_dynamic(folder_in, folder_out, per_channel=True):
    """Quantizes an ONNX export folder to int8 with ONNX Runtime (dynamic).

    Weights of every `MatMul` and `Gemm` with a constant weight are stored as
    int8, symmetric (per output channel by default), in 7 bits (`reduce_range`,
    so that CPUs without VNNI do not saturate); activations are
    quantized to uint8 at run time, per tensor, from their own min and max
    (`DynamicQuantizeLinear`), and the products run as `MatMulInteger`.
    Each graph first goes through ONNX Runtime's `quant_pre_process`
    (graph optimization and shape inference, symbolic when sympy is
    installed), as its quantization guide recommends.

    Args:
        folder_in: a folder written by `convert`.
        folder_out: the folder to write into (created if needed); usually the
            temporary folder of `tfaccel._io.atomic_dir`.
        per_channel: bool, one weight scale per output channel instead of one
            per tensor.

    Returns:
        A dict mapping each signature name to the path of its `.onnx` file.

    Raises:
        UserError: `folder_in` has no ONNX export, or a quantized graph does
            not load in ONNX Runtime.
    """
    folder_in = pathlib.Path(folder_in)
    onnx_export._check_folder(folder_in)
    protos = {}
    with scratch_dir("onnx-int8") as tmp:
        for name, file in onnx_export.FILES.items():
            protos[name] = _quantize_one(
                folder_in / file, pathlib.Path(tmp), per_channel
            )
            onnx_export._check_proto(protos[name], name, _opset_of(protos[name]))
    return onnx_export._write_all(protos, pathlib.Path(folder_out))


def _opset_of(proto):
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _quantize_one(path, tmp, per_channel):
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared, quantized = tmp / f"pre-{path.name}", tmp / f"int8-{path.name}"
    # Symbolic shape inference needs sympy, which ONNX Runtime does not
    # install; ONNX's own shape inference still runs without it.
    no_sympy = importlib.util.find_spec("sympy") is None
    quant_pre_process(str(path), str(prepared), skip_symbolic_shape=no_sympy)
    ort_quantize(
        str(prepared),
        str(quantized),
        op_types_to_quantize=["MatMul", "Gemm"],
        per_channel=per_channel,
        weight_type=QuantType.QInt8,
        # 7-bit weights: without VNNI, ONNX Runtime's u8 x s8 kernels sum
        # pairs of products in int16 and saturate (its quantization guide
        # says so). Measured on an AVX2-only AMD EPYC, a tiny trained model's
        # lean int8 tokens equal Keras's went from 60% to 92% with it; the
        # artifact may be served on such a CPU whatever exported it.
        reduce_range=True,
    )
    proto = onnx.load(str(quantized))
    # Shapes that pre-processing annotated: ONNX Runtime infers them again.
    del proto.graph.value_info[:]
    return proto
