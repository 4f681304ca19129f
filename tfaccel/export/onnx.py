"""ONNX export of the generation signatures (fp32 and dynamic int8), run in ORT.

`convert` writes one ONNX graph per signature of `tfaccel.export.signatures`,
`encode.onnx` and `decode_step.onnx`, so ONNX Runtime decodes with the same
fixed-size key/value cache as every other runtime. The graphs come from
tf2onnx, fed the SavedModel functions that TFLite and TF Serving get too.
`quantize_dynamic` turns such a folder into int8 (ONNX Runtime dynamic
quantization) and `ORTModel` runs either with the `generate` API of the
Keras model.

The ONNX graphs take the signature input names unchanged. The one output
that cannot keep its name is `decode_step`'s `self_cache`: an ONNX graph
may not define a value twice, and `self_cache` is already an input, so the
output is called `updated_self_cache` (`ORTModel` maps it back).

tf2onnx has no handler for two ops these models lower to; `convert` adds
its own:

- `Erfc` (exact GELU, `activation="gelu"`) becomes `1 - Erf(x)`. The
  subtraction loses the relative precision of tiny `erfc` values, but GELU
  multiplies them by `x / 2`, so its absolute error stays about 1e-7.
- `XlaDynamicUpdateSlice` (`keras.ops.slice_update`, which keras-hub uses
  to write the key/value cache) becomes `ScatterND`, with the start
  indices clamped as XLA clamps them.
"""

import contextlib
import logging
import pathlib

import numpy as np

from tfaccel._io import atomic_file, scratch_dir
from tfaccel.errors import UserError
from tfaccel.export import signatures
from tfaccel.export._onnx_ops import handlers as _handlers
from tfaccel.export.runner import Runner

# File of each signature's graph inside an ONNX export folder.
FILES = {signatures.ENCODE: "encode.onnx", signatures.DECODE_STEP: "decode_step.onnx"}
# The newest opset tf2onnx 1.17 converts to; ONNX Runtime 1.31 runs it.
OPSET = 18
# Oldest opset the handlers below emit valid nodes for (Unsqueeze with an
# `axes` input).
MIN_OPSET = 13
# ONNX name of `decode_step`'s `self_cache` output (see the module docstring).
UPDATED_SELF_CACHE = "updated_self_cache"


def convert(model, folder, source_length, target_length, opset=OPSET):
    """Converts a seq2seq model to `encode.onnx` and `decode_step.onnx`.

    Both graphs are converted, checked with `onnx.checker` and loaded into an
    ONNX Runtime session before either file is written; each file is then
    written under a temporary name and renamed into place. On any error no
    file is left in `folder`.

    Args:
        model: a `Seq2SeqTransformer` (stripped, if compressed).
        folder: the folder to write into (created if needed); usually the
            temporary folder of `tfaccel._io.atomic_dir`.
        source_length: int, the encoder width of the signatures.
        target_length: int, the self-attention cache length.
        opset: int, the ONNX opset, from `MIN_OPSET` to `OPSET`.

    Returns:
        A dict mapping each signature name to the path of its `.onnx` file.

    Raises:
        UserError: tf2onnx cannot convert some TensorFlow ops, or the graph
            fails the ONNX checker or does not load in ONNX Runtime.

    Example:

    ```python
    paths = convert(model, "exports/g2p-onnx", source_length=32, target_length=24)
    ORTModel("exports/g2p-onnx").generate(ids)
    ```
    """
    _check_opset(opset)
    protos = {}
    with _saved_model(model, source_length, target_length) as loaded:
        for name in FILES:
            protos[name] = _convert_function(loaded, name, opset)
            _check_proto(protos[name], name, opset)
    return _write_all(protos, pathlib.Path(folder))


def _check_opset(opset):
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= OPSET:
        raise ValueError(
            f"`opset` must be an int from {MIN_OPSET} to {OPSET}. "
            f"Received: opset={opset!r}"
        )


@contextlib.contextmanager
def _saved_model(model, source_length, target_length):
    """Yields the generation archive, written out and loaded back."""
    import tensorflow as tf

    archive = signatures.generation_archive(model, source_length, target_length)
    with scratch_dir("onnx") as tmp:
        archive.write_out(tmp, verbose=False)
        yield tf.saved_model.load(tmp)


def _convert_function(loaded, name, opset):
    """Converts the signature function `name` of a loaded SavedModel.

    The function is wrapped so its outputs get their ONNX names; tf2onnx
    names graph inputs and outputs after the signature's.
    """
    import tensorflow as tf
    import tf2onnx

    function = getattr(loaded, name)

    def renamed(*args):
        outputs = function(*args)
        return {_onnx_name(key): value for key, value in outputs.items()}

    wrapped = tf.function(renamed, input_signature=function.input_signature)
    try:
        with _quiet_tf2onnx():
            proto, _ = tf2onnx.convert.from_function(
                wrapped,
                input_signature=function.input_signature,
                opset=opset,
                custom_op_handlers=_handlers(),
            )
    except Exception as error:
        raise UserError(
            f"tf2onnx failed to convert signature '{name}': "
            f"{_first_line(error)} Export to TFLite or SavedModel instead. "
            f"Received: opset={opset}"
        ) from error
    _name_batch_axes(proto)
    return proto


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _onnx_name(output):
    return UPDATED_SELF_CACHE if output == "self_cache" else output


@contextlib.contextmanager
def _quiet_tf2onnx():
    """Silences tf2onnx's loggers; unsupported ops are reported by `convert`."""
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _name_batch_axes(proto):
    """Names the first axis of every graph input and output `batch`.

    tf2onnx gives each unknown axis its own name; one shared name tells
    ONNX Runtime that the batch is the same everywhere.
    """
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"


# === Checks and writing ===


def _check_proto(proto, signature, opset):
    """Raises `UserError` unless ONNX and ONNX Runtime both accept `proto`."""
    import onnx

    unsupported = sorted(
        {
            node.op_type
            for node in proto.graph.node
            if node.domain in ("", "ai.onnx")
            and not onnx.defs.has(node.op_type, opset, node.domain)
        }
    )
    if unsupported:
        raise UserError(
            f"tf2onnx cannot convert the TensorFlow ops {', '.join(unsupported)} "
            f"of signature '{signature}' to ONNX opset {opset}; export to TFLite "
            f"or SavedModel instead. Received: ops={unsupported}"
        )
    try:
        onnx.checker.check_model(proto)
        _session(proto.SerializeToString())
    except Exception as error:
        raise UserError(
            f"The ONNX graph of signature '{signature}' does not load: "
            f"{_first_line(error)} Export to TFLite or SavedModel instead. "
            f"Received: opset={opset}"
        ) from error


def _write_all(protos, folder):
    """Writes each graph atomically; removes those written if one fails."""
    written = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, proto in protos.items():
            path = folder / FILES[name]
            with atomic_file(path) as tmp:
                tmp.write_bytes(proto.SerializeToString())
            written[name] = str(path)
    except BaseException as error:
        for path in written.values():
            pathlib.Path(path).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise UserError(
                f"Cannot write ONNX files under '{folder}': {error.strerror}. "
                "Pass a writable folder."
            ) from error
        raise
    return written


def _session(model, num_threads=1, providers=None):
    """An ONNX Runtime session on a path or serialized bytes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(
        model, options, providers=providers or ["CPUExecutionProvider"]
    )


# === Dynamic int8 ===


def quantize_dynamic(folder_in, folder_out, per_channel=True):
    """Quantizes an ONNX export folder to int8 with ONNX Runtime (dynamic).

    See `tfaccel.export.onnx_int8.quantize_dynamic`, which this calls.
    """
    from tfaccel.export import onnx_int8

    return onnx_int8.quantize_dynamic(folder_in, folder_out, per_channel)


def _check_folder(folder):
    missing = [file for file in FILES.values() if not (folder / file).is_file()]
    if missing:
        raise UserError(
            f"No ONNX export at '{folder}' (missing {', '.join(missing)}). "
            "Export one with tfaccel.export.onnx.convert first."
        )


# === Runtime ===

_NUMPY_TYPES = {"tensor(int32)": np.int32, "tensor(int64)": np.int64}


def _signature(session):
    """Wraps a session as `f(**inputs) -> {output name: array}`.

    Inputs are cast to the dtypes the graph declares (ONNX Runtime takes no
    other), and outputs get their signature names back.
    """
    dtypes = {
        i.name: _NUMPY_TYPES.get(i.type, np.float32) for i in session.get_inputs()
    }
    names = [output.name for output in session.get_outputs()]
    signature_names = ["self_cache" if n == UPDATED_SELF_CACHE else n for n in names]

    def call(**inputs):
        feed = {key: np.asarray(value, dtypes[key]) for key, value in inputs.items()}
        return dict(zip(signature_names, session.run(names, feed), strict=True))

    return call


class ORTModel(Runner):
    """An ONNX export folder (fp32 or int8) run in ONNX Runtime.

    `generate` (from `Runner`) decodes with the `encode`/`decode_step` graphs
    and a key/value cache, with the same API as the Keras model.

    Args:
        folder: a folder written by `convert` or `quantize_dynamic`.
        num_threads: int, intra-op threads of each session.
        providers: ONNX Runtime execution providers, in order of preference;
            `None` for `["CPUExecutionProvider"]`.

    Example:

    ```python
    runner = ORTModel("exports/g2p-onnx")
    tokens = runner.generate(ids, max_length=24)
    ```
    """

    def __init__(self, folder, num_threads=1, providers=None):
        self.folder = pathlib.Path(folder)
        self.num_threads = num_threads
        self.providers = providers
        _check_folder(self.folder)
        self.sessions = {
            name: _session(str(self.folder / file), num_threads, providers)
            for name, file in FILES.items()
        }
        inputs = {i.name: i for i in self.sessions[signatures.DECODE_STEP].get_inputs()}
        super().__init__(
            _signature(self.sessions[signatures.ENCODE]),
            _signature(self.sessions[signatures.DECODE_STEP]),
            # self_cache: (batch, layers, 2, target, heads, head_dim)
            cache_shape=inputs["self_cache"].shape[1:],
            source_length=inputs["encoder_mask"].shape[1],
        )
        import onnxruntime

        self.runtime = f"ONNX Runtime {onnxruntime.__version__}"

    def first_step_logits(self, padded_ids):
        """Logits of the first decode step (BOS), for verification.

        Args:
            padded_ids: int array `(batch, source_length)`; 0 pads.

        Returns:
            float32 `(batch, vocab)`.
        """
        encoded = self._encode(encoder_token_ids=padded_ids)
        batch = len(padded_ids)
        out = self._decode(
            token_ids=np.ones((batch, 1), np.int32),
            index=np.int32(0),
            self_cache=np.zeros((batch, *self._cache_shape), np.float32),
            cross_cache=encoded["cross_cache"],
            encoder_mask=encoded["encoder_mask"],
        )
        return out["logits"]
