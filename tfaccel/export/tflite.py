"""TFLite conversion (fp32, fp16, dynamic-range, full int8, QAT) and LiteRT runs.

Every variant is converted from a SavedModel with the `encode` and
`decode_step` signatures (`tfaccel.export.signatures`), so the `.tflite`
file decodes with a key/value cache. `LiteRTModel` runs such a file in
LiteRT's interpreter and has the same `generate` as the Keras model, so a
task scores it exactly as it scores Keras.

Modes:

- `fp32`: no optimization.
- `fp16`: weights stored as float16 (TFLite dequantizes them on CPU).
- `dynamic`: dynamic-range quantization, int8 weights, float activations.
- `int8`: full-integer post-training quantization; activation ranges are
  calibrated on a representative dataset (inputs and outputs stay float).
  Attention masks are applied with a bounded fill value while converting
  (see `_bounded_attention_masks`), so the calibrated range of the scores
  stays that of real scores, and layer normalization's statistics stay
  float (`FLOAT_OPS`).
- `qat`: a model stripped after `tfaccel.quantize_aware`. Its graph carries
  the trained activation ranges as FakeQuant ops and its weights sit on the
  int8 grid, so the converter builds int8 kernels from them directly: no
  calibration. The weights carry no FakeQuant op in the exported graph: a
  per-channel FakeQuant on a Keras `(in, out)` kernel has its axis on `out`,
  but TFLite's FULLY_CONNECTED stores `(out, in)`, and the transpose
  between them fails conversion with "mismatched quantized axes". Baked
  on-grid weights are quantized per output channel by the converter itself,
  with the same max-|w| scale, so the values are unchanged.
"""

import contextlib
import pathlib

import numpy as np

from tfaccel._io import scratch_dir
from tfaccel.errors import UserError
from tfaccel.export import generation, signatures
from tfaccel.export.runner import Runner
from tfaccel.export.tflite_inspect import op_report, stored_bytes  # noqa: F401 (re-exported)

MODES = ("fp32", "fp16", "dynamic", "int8", "qat")


def convert(model, mode, source_length, target_length, representative=None):
    """Converts a seq2seq model to TFLite bytes with both signatures.

    Args:
        model: a `Seq2SeqTransformer`; for `"qat"`, stripped after QAT.
        mode: one of `MODES`.
        source_length: int, the encoder width of the signatures.
        target_length: int, the self-attention cache length.
        representative: for `"int8"`, an iterable of int32 source id arrays
            `(batch, <= source_length)` from the training split.

    Returns:
        The `.tflite` flatbuffer, as bytes.

    Raises:
        UserError: an unknown mode, mode `"qat"` on a model without QAT, a
            QAT model not yet stripped, or a missing or empty representative
            dataset.
    """
    import tensorflow as tf

    _check_mode(model, mode)
    samples = None
    if mode == "int8":
        samples = _calibration_samples(
            model, representative, source_length, target_length
        )
    bounded = _bounded_attention_masks(model) if mode == "int8" else None
    with (
        bounded or contextlib.nullcontext(),
        _saved_model(model, source_length, target_length) as folder,
    ):
        converter = tf.lite.TFLiteConverter.from_saved_model(
            str(folder), signature_keys=[signatures.ENCODE, signatures.DECODE_STEP]
        )
        _configure(converter, mode)
        if mode != "int8":
            return _strip_tensor_names(converter.convert())
        converter.representative_dataset = lambda: iter(samples)
        converter._experimental_calibrate_only = True
        calibrated = converter.convert()
    return _strip_tensor_names(_quantize_calibrated(calibrated))


# Layer normalization's statistics (mean, variance, 1/sqrt) stay float in
# full-int8 PTQ: in int8 they cost G2P `small` +0.58 WER against +0.46
# with them float, for 3% more bytes (measured in issue 5's note).
FLOAT_OPS = ("MEAN", "SQUARED_DIFFERENCE", "RSQRT")


def _quantize_calibrated(calibrated):
    """Quantizes a calibrated model to int8, keeping `FLOAT_OPS` float.

    This is the step `TFLiteConverter.convert` runs after calibration, with
    the op deny-list of TensorFlow's `QuantizationDebugger` (which calls the
    same function); inputs and outputs stay float32.
    """
    from tensorflow.lite.python import convert as lite_convert

    return lite_convert.mlir_quantize(
        calibrated, denylisted_ops=list(FLOAT_OPS), fully_quantize=False
    )


def convert_model(model, mode, representative=None):
    """Converts any Keras model's forward pass (its `serve` signature) to TFLite.

    For models without generation signatures, such as a keras-hub backbone.

    Args:
        model: a built Keras model; for `"qat"`, stripped after QAT.
        mode: one of `MODES`.
        representative: for `"int8"`, an iterable of input dicts (or arrays).

    Returns:
        The `.tflite` flatbuffer, as bytes.
    """
    import tensorflow as tf

    _check_mode(model, mode)
    if mode == "int8":
        samples = list(representative or [])
        if not samples:
            raise UserError(
                "The representative dataset for TFLite mode 'int8' is empty; pass "
                "at least one input batch from the training split."
            )
    with scratch_dir("tflite") as folder:
        model.export(folder, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        _configure(converter, mode)
        if mode == "int8":
            converter.representative_dataset = lambda: iter(samples)
        return _strip_tensor_names(converter.convert())


def _check_mode(model, mode):
    from tfaccel.core import registry

    if mode not in MODES:
        raise UserError(
            f"Unknown TFLite mode {mode!r}. Use one of: {', '.join(MODES)}."
        )
    qat = registry.get("quantization")  # None until tfaccel.quantization is imported
    states = qat.find_states(model) if qat is not None else []
    if mode == "qat" and not states:
        raise UserError(
            "TFLite mode 'qat' needs a model trained with tfaccel.quantize_aware "
            "and stripped; for a float model use 'int8' (post-training)."
        )
    if states and qat.is_training(model):
        raise UserError("Call tfaccel.strip(model) after QAT, before converting it.")


def _configure(converter, mode):
    import tensorflow as tf

    if mode != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]


def _strip_tensor_names(data):
    """Drops tensor names (debug strings, about 3% of a small model's file).

    Signature inputs and outputs keep their names: signature maps name
    tensors by index. TensorFlow's own `flatbuffer_utils.strip_strings`
    would drop the signatures too.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.name = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


# How far below a row's lowest score masked positions are set: e^-16 is
# about 1e-7, so a masked position gets no visible share of the softmax.
MASK_MARGIN = 16.0


@contextlib.contextmanager
def _bounded_attention_masks(model):
    """Masks attention scores with a finite fill value while converting.

    Keras masks attention scores with `where(mask, scores, -1e9)`. Full-int8
    post-training quantization calibrates one range per tensor, so the -1e9
    becomes the low end of the masked scores' range and every real score
    rounds to the same int8 value: the softmax turns uniform and the model
    outputs noise (WER near 100%). Here masked positions are set to the
    row's lowest score minus `MASK_MARGIN` instead. The softmax is the same
    to about 1e-7, and the range to calibrate grows by only the margin.

    The attention layers get an instance-level `_compute_attention` (the
    explicit path of `keras.layers.MultiHeadAttention`) for the duration of
    the block; layers already patched by `tfaccel.quantize_aware` are left
    alone.
    """
    import keras

    layers = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.MultiHeadAttention)
        and "_compute_attention" not in vars(layer)
    ]
    for layer in layers:
        object.__setattr__(layer, "_compute_attention", _bounded_attention(layer))
    try:
        yield
    finally:
        for layer in layers:
            object.__delattr__(layer, "_compute_attention")


def _bounded_attention(layer):
    from keras import ops

    from tfaccel.core import attention

    axes = tuple(range(-len(layer._attention_axes), 0))

    def compute_attention(
        query,
        key,
        value,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
        use_causal_mask=False,
    ):
        query, attention_mask = attention.prepare(
            layer, query, value, attention_mask, use_causal_mask
        )
        scores = ops.einsum(layer._dot_product_equation, key, query)
        if attention_mask is not None:
            mask = ops.cast(attention_mask, "bool")
            for _ in range(len(scores.shape) - len(mask.shape)):
                mask = ops.expand_dims(mask, axis=-len(layer._attention_axes) * 2 - 1)
            low = ops.min(scores, axis=axes, keepdims=True) - MASK_MARGIN
            scores = ops.where(mask, scores, low)
        if len(axes) == 1:
            probabilities = ops.softmax(scores, axis=axes[0])
        else:
            probabilities = ops.exp(
                scores - ops.logsumexp(scores, axis=axes, keepdims=True)
            )
        context = ops.einsum(layer._combine_equation, probabilities, value)
        return context, probabilities

    return compute_attention


@contextlib.contextmanager
def _saved_model(model, source_length, target_length):
    archive = signatures.generation_archive(model, source_length, target_length)
    with scratch_dir("tflite") as folder:
        path = pathlib.Path(folder) / "saved_model"
        archive.write_out(str(path), verbose=False)
        yield path


def _calibration_samples(model, sources, source_length, target_length, limit=128):
    """Builds `(signature, inputs)` pairs by greedy-decoding `sources` in Keras.

    Each source is encoded, then decoded one token at a time with the Keras
    model, and every `decode_step` input along the way is a sample, so the
    cache contents seen in calibration are those seen at inference.
    """
    if sources is None:
        raise UserError(
            "TFLite mode 'int8' needs a representative dataset: source id "
            "arrays from the training split (tasks give one)."
        )
    samples = []
    rows = 0
    for batch in sources:
        batch = np.asarray(batch, dtype=np.int32)
        for ids in batch:
            if rows >= limit:
                break
            samples += _trace_one(model, ids, source_length, target_length)
            rows += 1
    if not samples:
        raise UserError(
            "The representative dataset for TFLite mode 'int8' is empty; pass "
            "at least one batch of source ids from the training split."
        )
    return samples


def _trace_one(model, ids, source_length, target_length):
    from keras import ops

    from tfaccel.models.seq2seq_transformer import BOS_ID, EOS_ID

    padded = np.zeros((1, source_length), np.int32)
    ids = ids[ids != 0][:source_length]
    padded[0, : len(ids)] = ids
    cross, mask = model.encode(padded)
    cross = ops.convert_to_numpy(cross)
    mask = ops.convert_to_numpy(mask).astype(np.float32)
    samples = [(signatures.ENCODE, {"encoder_token_ids": padded})]
    cache = ops.convert_to_numpy(model.init_cache(1, target_length))
    token = BOS_ID
    for index in range(target_length):
        inputs = {
            "token_ids": np.array([[token]], np.int32),
            "index": np.array(index, np.int32),
            "self_cache": cache,
            "cross_cache": cross,
            "encoder_mask": mask,
        }
        samples.append((signatures.DECODE_STEP, inputs))
        logits, cache = model.decode_step(
            inputs["token_ids"], index, cache, cross, mask > 0.5
        )
        cache = ops.convert_to_numpy(cache)
        token = int(generation.greedy(ops.convert_to_numpy(logits))[0])
        if token == EOS_ID:
            break
    return samples


def load_interpreter(model, num_threads=1):
    """Returns LiteRT's `Interpreter` for `.tflite` bytes or a file path.

    Raises:
        UserError: if the path is not a file.
    """
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(model, bytes):
        return Interpreter(model_content=model, num_threads=num_threads)
    path = pathlib.Path(model)
    if not path.is_file():
        raise UserError(
            f"No TFLite file at '{path}'. Export one first. Received: model={model}"
        )
    return Interpreter(model_path=str(path), num_threads=num_threads)


class LiteRTModel(Runner):
    """A `.tflite` seq2seq model run in LiteRT's interpreter.

    `generate` is `Runner`'s cached greedy decoding.

    Args:
        model: path of a `.tflite` file, or its bytes.
        num_threads: interpreter threads.

    Example:

    ```python
    lite = LiteRTModel("model.tflite")
    tokens = lite.generate(ids, max_length=32)
    ```
    """

    def __init__(self, model, num_threads=1):
        self.interpreter = load_interpreter(model, num_threads)
        decode = self.interpreter.get_signature_runner(signatures.DECODE_STEP)
        details = decode.get_input_details()
        super().__init__(
            self.interpreter.get_signature_runner(signatures.ENCODE),
            decode,
            cache_shape=details["self_cache"]["shape_signature"][1:],
            source_length=details["cross_cache"]["shape_signature"][3],
        )
