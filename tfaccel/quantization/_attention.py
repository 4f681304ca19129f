"""QAT of attention: int8 operands for the two matmuls of MultiHeadAttention.

The layer's `_compute_attention` is replaced on the instance by the
explicit path of `keras.layers.MultiHeadAttention`, with the query, the
scores and the probabilities fake-quantized, and the keys and values
quantized by the ranges of their projections.
"""

import keras
from keras import ops

from tfaccel.core import attention
from tfaccel.quantization import _state
from tfaccel.quantization._fake_quant import ActivationRange, quantized_by


def quantize_attention(model, quantized, config):
    """Quantizes the matmuls of every attention layer whose projections are.

    Args:
        model: the model `quantize_aware` changes.
        quantized: `{id(layer): QuantizedLayer}` of the quantized layers.
        config: the `QATConfig`.

    Returns:
        A list of `QuantizedLayer` of kind `"attention"`.
    """
    records = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, keras.layers.MultiHeadAttention):
            continue
        projections = (layer._query_dense, layer._key_dense, layer._value_dense)
        if not all(id(p) in quantized for p in projections):
            continue
        records.append(_quantize_matmuls(layer, config, quantized))
    return records


def _quantize_matmuls(layer, config, quantized):
    # One range per tensor (see `stamp`): the keys and values use the output
    # ranges of the key and value projections, also when they are read back
    # from a cache, and the context (probabilities @ value) is quantized by
    # the output projection's input range.
    names = ("query", "scores", "probabilities")
    record = _state.QuantizedLayer(
        path=layer.path or layer.name,
        kind="attention",
        layer=layer,
        ranges={
            name: ActivationRange(
                f"{layer.name}_{name}", config.activation_bits, config.range_decay
            )
            for name in names
        },
    )
    # TFLite's int8 softmax output has the fixed scale 1/256 and zero point
    # -128; giving the probabilities exactly that range avoids a second
    # rounding (a requantize op) after the softmax in the exported model.
    record.ranges["probabilities"].set_values(0.0, 255.0 / 256.0)
    q = record.ranges
    key_range = quantized[id(layer._key_dense)].ranges["output"]
    value_range = quantized[id(layer._value_dense)].ranges["output"]
    axes = layer._softmax.axis
    softmax_axis = (
        axes[0] if isinstance(axes, tuple | list) and len(axes) == 1 else axes
    )

    def compute_attention(
        query,
        key,
        value,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
        use_causal_mask=False,
    ):
        # The explicit path of keras.layers.MultiHeadAttention, with each
        # matmul operand quantized; softmax and the mask stay float.
        query, attention_mask = attention.prepare(
            layer, query, value, attention_mask, use_causal_mask
        )
        key = key if quantized_by(key) else key_range(key, training, update=False)
        value = (
            value if quantized_by(value) else value_range(value, training, update=False)
        )
        scores = ops.einsum(
            layer._dot_product_equation, key, q["query"](query, training)
        )
        scores = q["scores"](scores, training)
        if attention_mask is not None:
            # An additive float mask rather than Keras's `where`: TFLite
            # would run a `where` in int8 and clip the -1e9 to the range of
            # the scores, leaking attention onto padding. The add has no
            # range after it, so it and the softmax stay float.
            mask = ops.cast(attention_mask, scores.dtype)
            for _ in range(len(scores.shape) - len(mask.shape)):
                mask = ops.expand_dims(mask, axis=-len(layer._attention_axes) * 2 - 1)
            penalty = masked_penalty(scores.dtype)
            scores = ops.add(scores, ops.multiply(ops.subtract(1.0, mask), penalty))
        probabilities = ops.softmax(scores, axis=softmax_axis)
        if layer._dropout > 0.0:
            probabilities = layer._dropout_layer(probabilities, training=training)
        context = ops.einsum(
            layer._combine_equation, q["probabilities"](probabilities, training), value
        )
        return context, probabilities

    _state.patch(record, "_compute_attention", compute_attention)
    return record


def masked_penalty(dtype):
    """The score added where attention is masked: -1e9, or -3e4 in float16.

    -1e9 overflows float16 (largest finite 65504) to -inf, and the mask's
    `0 * -inf` is NaN: QAT under `mixed_float16` had a NaN loss from the
    first step. -3e4 still sends the masked probabilities to exactly 0
    (exp(-3e4) underflows) and leaves room for the scores beside it. Other
    dtypes keep -1e9, so float32 graphs and their exports are unchanged.
    """
    return -3e4 if keras.backend.standardize_dtype(dtype) == "float16" else -1e9
