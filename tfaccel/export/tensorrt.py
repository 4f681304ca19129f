"""TensorRT engines built from the ONNX export, and a runner for them.

TF-TRT (`tf.experimental.tensorrt`) was removed in TensorFlow 2.18. The
supported path to TensorRT is now ONNX: tfaccel exports `encode.onnx` and
`decode_step.onnx` (`tfaccel.export.onnx`) and builds one serialized engine
(`.plan`) from each with the `tensorrt` Python package.

Networks are strongly typed, as TensorRT 11 requires (and TensorRT 10
supports): an engine computes in the types of its ONNX graph. An fp32 ONNX
file gives an fp32 engine; int8 comes from explicit quantization, an ONNX
file with QuantizeLinear/DequantizeLinear (Q/DQ) pairs, not from the
removed INT8 builder flag and calibrator.

Needs an NVIDIA GPU, `pip install 'tfaccel[tensorrt]'` (TensorRT and
cuda-python). Without them `check_available` raises one clear line and the
tests skip.
"""

import pathlib

import numpy as np

from tfaccel.errors import UserError, missing_extra
from tfaccel.export import signatures
from tfaccel.export.onnx import UPDATED_SELF_CACHE
from tfaccel.export.runner import Runner

NAMES = (signatures.ENCODE, signatures.DECODE_STEP)


def availability():
    """Returns `(True, "")`, or `(False, why)` in one line."""
    try:
        import tensorrt  # noqa: F401
        from cuda.bindings import runtime as cudart
    except ImportError as error:
        return False, str(missing_extra(error.name or "tensorrt", "tensorrt"))
    error, count = cudart.cudaGetDeviceCount()
    if error != cudart.cudaError_t.cudaSuccess or count == 0:
        return False, (
            "TensorRT needs an NVIDIA GPU and none is visible "
            f"({error.name if hasattr(error, 'name') else error}); export 'onnx' "
            "and run it in ONNX Runtime instead."
        )
    return True, ""


def check_available():
    """Raises a one-line `UserError` unless TensorRT can build and run here."""
    ok, why = availability()
    if not ok:
        raise UserError(why)


def build(onnx_folder, folder, max_batch=64):
    """Builds `encode.plan` and `decode_step.plan` from an ONNX export.

    Args:
        onnx_folder: a folder written by `tfaccel.export.onnx.convert` (or its
            Q/DQ int8 form).
        folder: where the `.plan` files go (a temporary folder the caller
            publishes).
        max_batch: the largest batch the engines accept.
    """
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    for name in NAMES:
        builder = trt.Builder(logger)
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        source = pathlib.Path(onnx_folder) / f"{name}.onnx"
        if not parser.parse(source.read_bytes()):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise UserError(
                f"TensorRT cannot parse {source}: {'; '.join(errors)}. Check the "
                "ONNX export with onnx.checker, or report the op."
            )
        config = builder.create_builder_config()
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            shape = tuple(tensor.shape)
            if shape and shape[0] == -1:
                rest = shape[1:]
                profile.set_shape(
                    tensor.name, (1, *rest), (1, *rest), (max_batch, *rest)
                )
        config.add_optimization_profile(profile)
        engine = builder.build_serialized_network(network, config)
        if engine is None:
            raise UserError(
                f"TensorRT could not build an engine from {source}; run with "
                "TensorRT's verbose logger for the layer that failed."
            )
        (pathlib.Path(folder) / f"{name}.plan").write_bytes(bytes(engine))


class _Engine:
    """One deserialized engine, called with numpy inputs by name."""

    def __init__(self, runtime, data):
        self.engine = runtime.deserialize_cuda_engine(data)
        self.context = self.engine.create_execution_context()
        import tensorrt as trt

        count = self.engine.num_io_tensors
        names = [self.engine.get_tensor_name(i) for i in range(count)]
        self.inputs = [
            n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT
        ]
        self.outputs = [n for n in names if n not in self.inputs]

    def __call__(self, **inputs):
        import tensorrt as trt
        from cuda.bindings import runtime as cudart

        buffers = []
        try:
            for name in self.inputs:
                array = np.ascontiguousarray(
                    inputs[name], trt.nptype(self.engine.get_tensor_dtype(name))
                )
                self.context.set_input_shape(name, array.shape)
                buffers.append(_to_device(array))
                self.context.set_tensor_address(name, buffers[-1])
            results = {}
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = trt.nptype(self.engine.get_tensor_dtype(name))
                results[name] = np.empty(shape, dtype)
                _, pointer = cudart.cudaMalloc(max(results[name].nbytes, 1))
                buffers.append(pointer)
                self.context.set_tensor_address(name, pointer)
            if not self.context.execute_async_v3(0):
                raise RuntimeError("TensorRT execution failed")
            cudart.cudaDeviceSynchronize()
            outputs = buffers[len(self.inputs) :]
            for name, pointer in zip(self.outputs, outputs, strict=True):
                cudart.cudaMemcpy(
                    results[name].ctypes.data,
                    pointer,
                    results[name].nbytes,
                    cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                )
            # ONNX outputs may not share an input's name (tfaccel.export.onnx).
            if UPDATED_SELF_CACHE in results:
                results["self_cache"] = results.pop(UPDATED_SELF_CACHE)
            return results
        finally:
            for pointer in buffers:
                cudart.cudaFree(pointer)


def _to_device(array):
    from cuda.bindings import runtime as cudart

    _, pointer = cudart.cudaMalloc(max(array.nbytes, 1))
    kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
    cudart.cudaMemcpy(pointer, array.ctypes.data, array.nbytes, kind)
    return pointer


class TensorRTModel(Runner):
    """`encode.plan` and `decode_step.plan` run by TensorRT on the GPU.

    `generate` is `Runner`'s cached greedy decoding, as every other runtime's.

    Args:
        folder: a folder written by `build`.
    """

    def __init__(self, folder):
        check_available()
        import tensorrt as trt

        folder = pathlib.Path(folder)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        decode = _Engine(runtime, (folder / "decode_step.plan").read_bytes())
        super().__init__(
            _Engine(runtime, (folder / "encode.plan").read_bytes()),
            decode,
            cache_shape=tuple(decode.engine.get_tensor_shape("self_cache"))[1:],
            source_length=decode.engine.get_tensor_shape("cross_cache")[3],
        )
        self.runtime = f"TensorRT {trt.__version__}"
