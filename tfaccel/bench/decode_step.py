"""The weights one batch-1 decode step reads, and its memory-bound floor.

At batch 1 a decoder step multiplies one token by every weight it uses, so
it cannot run faster than the time it takes to read those weights from
memory. `decode_step_params` counts them, `decode_step_bytes` turns them
into bytes for an export format, and `floor_fraction` / `floor_rows` put a
measured step time against step bytes / bandwidth (the bandwidth from
`tfaccel.bench.roofline.measure_machine`).
"""

import math

import keras

from tfaccel.compression.flops import kernel_macs
from tfaccel.core.counts import parameter_count
from tfaccel.errors import UserError

# Bytes per kernel weight in each export format. Scales (int8) are ignored:
# one float per output channel, well under 1% of the kernel bytes.
FORMAT_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


class _LayerGroup(keras.layers.Layer):
    """Some layers of a model, held together so `flops` can count them."""

    def __init__(self, layers):
        super().__init__()
        self.members = list(layers)


def decode_step_params(model):
    """Counts the weights one batch-1 decoder step of `model` reads.

    A step runs every decoder layer (self-attention, the query and output
    projections of cross-attention, feedforward, layer norms) and the
    `lm_head`, and looks up one token and one position embedding row.
    Cross-attention keys and values are projected from the encoder output
    once per sequence (`Seq2SeqTransformer.encode`), so their projections
    are left out. Key/value cache reads are activations, not counted.

    Args:
        model: a built `Seq2SeqTransformer` (plain or compressed).

    Returns:
        A dict: `kernels`, the kernel weights (`flops.kernel_macs` of those
        layers: one weight per multiply-accumulate at batch 1, factorized
        kernels as their factors); `others`, every other variable of those
        layers (biases, norms, any quantization scales) plus the two
        embedding rows.

    Example:

    ```python
    decode_step_params(Seq2SeqTransformer.from_preset("tiny"))
    # {"kernels": 5888, "others": 560}
    ```
    """
    group = _LayerGroup(_step_layers(model))
    kernels = kernel_macs(group)
    others = parameter_count(group) - kernels + 2 * model.hidden_dim
    return {"kernels": kernels, "others": others}


def decode_step_bytes(model, weight_format="fp32"):
    """Returns the bytes of weights one batch-1 decoder step reads.

    Kernels take `FORMAT_BYTES[weight_format]` bytes each (fp32 4, fp16 2,
    int8 1); the other weights stay float32 (fp32, int8 dynamic-range
    quantization) or are halved too (fp16).

    Args:
        model: a built `Seq2SeqTransformer`.
        weight_format: `"fp32"`, `"fp16"` or `"int8"`.

    Returns:
        An int, bytes per step.
    """
    if weight_format not in FORMAT_BYTES:
        raise UserError(
            f"`weight_format` must be one of {', '.join(FORMAT_BYTES)}. "
            f"Received: weight_format={weight_format!r}"
        )
    params = decode_step_params(model)
    other_bytes = 2 if weight_format == "fp16" else 4
    return (
        params["kernels"] * FORMAT_BYTES[weight_format] + params["others"] * other_bytes
    )


def floor_fraction(step_seconds, step_bytes, bandwidth_gbs):
    """Returns floor time / measured time: 1.0 is at the memory-bound floor.

    Args:
        step_seconds: float > 0, measured seconds of one decode step.
        step_bytes: bytes of weights a step reads (`decode_step_bytes`).
        bandwidth_gbs: float > 0, memory bandwidth in GB/s (1e9 bytes/s).

    Returns:
        A float: `step_bytes / (bandwidth_gbs * 1e9) / step_seconds`.

    Example:

    >>> floor_fraction(1e-3, 2_000_000, 20.0)  # floor 0.1 ms of 1 ms
    0.1
    """
    check_positive(
        step_seconds=step_seconds, step_bytes=step_bytes, bandwidth_gbs=bandwidth_gbs
    )
    return step_bytes / (bandwidth_gbs * 1e9) / step_seconds


def floor_rows(rows, step_bytes, bandwidth_gbs):
    """Puts each runtime's batch-1 generation against the memory floor.

    A step's time is taken as a batch-1 sequence's p50 over its mean
    generated tokens, so the encoder and per-call overhead count against
    the runtime: the fraction is a lower bound.

    Args:
        rows: rows from `tfaccel.bench.timing.benchmark`; only batch 1 is used.
        step_bytes: dict of row name -> `decode_step_bytes` of its format.
        bandwidth_gbs: float, e.g. `measure_machine()["bandwidth_gbs"]`.

    Returns:
        A list of dicts: `name`, `step_bytes`, `step_ms`, `floor_ms`,
        `floor_fraction`.
    """
    out = []
    for row in rows:
        if row["batch_size"] != 1 or row["name"] not in step_bytes:
            continue
        seconds = row["p50_ms"] / 1e3 / max(row["mean_tokens"], 1.0)
        nbytes = step_bytes[row["name"]]
        fraction = floor_fraction(seconds, nbytes, bandwidth_gbs)
        out.append(
            {
                "name": row["name"],
                "step_bytes": nbytes,
                "step_ms": seconds * 1e3,
                "floor_ms": nbytes / (bandwidth_gbs * 1e9) * 1e3,
                "floor_fraction": fraction,
            }
        )
    return out


def _step_layers(model):
    # The layers a decode step runs, without the cross-attention key/value
    # projections and without any layer that contains them.
    skipped = set()
    for layer in model.decoder_layers:
        attention = layer._cross_attention_layer
        for dense in (attention._key_dense, attention._value_dense):
            skipped.update(id(x) for x in dense._flatten_layers(include_self=True))
    layers = [model.lm_head]
    for layer in model.decoder_layers:
        for sub in layer._flatten_layers(include_self=False):
            if not any(id(x) in skipped for x in sub._flatten_layers()):
                layers.append(sub)
    return layers


def check_positive(**values):
    """Raises a `UserError` naming the first value that is not a finite number > 0."""
    for name, value in values.items():
        if not isinstance(value, int | float) or not value > 0 or math.isinf(value):
            raise UserError(
                f"`{name}` must be a positive number. Received: {name}={value!r}"
            )
