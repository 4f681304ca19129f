"""TFLite conversion of the tf_keras twin, and greedy decoding of its file in LiteRT.

The twin has one signature, the teacher-forced forward pass, with fixed
shapes `(batch, source_length)` and `(batch, target_length)`. It has no
`encode` / `decode_step` split and no key/value cache: `LiteRTTwin.generate`
decodes the way a tf_keras user would, re-running the whole model (encoder
included) on the growing, zero-padded prefix, one token per run. That is
O(n^2) in the decoder and runs the encoder n times; tfaccel's exports run
the encoder once and decode with a cache.
"""

import collections

import numpy as np

from tfaccel.errors import UserError

BOS_ID, EOS_ID, PAD_ID = 1, 2, 0
INPUTS = ("encoder_token_ids", "decoder_token_ids")
# Ops that only move data between float and int8 at the model's edges.
_CONVERSIONS = ("QUANTIZE", "DEQUANTIZE")


def to_tflite_int8(
    model,
    representative=None,
    source_length=32,
    target_length=32,
    batch_size=1,
    optimize=True,
):
    """Converts a tf_keras twin (QAT, pruned or float) to a `.tflite` flatbuffer.

    With `optimize=True` the converter gets `Optimize.DEFAULT`, and a tfmot
    QAT model's FakeQuant ranges decide what becomes int8. Inputs and
    outputs stay int32 ids and float32 logits. Measured with tfmot 0.8.1
    and TensorFlow 2.21 (`op_summary` shows it for any file):

    - Without `representative`, only a `FULLY_CONNECTED` whose input and
      weights both carry QAT ranges runs in int8: in the twin, each layer's
      feedforward output `Dense`. The attention projections, the
      feedforward input `Dense` (fed by an unquantized `LayerNormalization`)
      and `lm_head` run in float, and their weights stay float32: the
      converter adds no dynamic-range quantization to a QAT graph. The file
      is barely smaller than float32 (1.58 MB against 1.97 MB for a
      one-layer twin of `small`'s width).
    - With `representative`, everything but two mask `CAST`s is int8, but
      tf_keras's `MultiHeadAttention` adds -1e9 at masked positions before
      its softmax. Calibration then gives the softmax input a scale of about
      4e6, every real score rounds to the same int8 value and attention
      turns uniform: on a toy task (reverse 8 tokens, 2+2 layers) no
      sequence came out right, against 58 of 64 without `representative`
      and 64 of 64 in float32. tfaccel's own int8 export bounds its masks
      for this reason (`tfaccel.export.tflite`).

    Args:
        model: a tf_keras twin, or the model from `tfmot_prune_qat`.
        representative: iterable of input dicts (`encoder_token_ids`,
            `decoder_token_ids`, int arrays `(batch, length)`), or None.
        source_length: int. Fixed encoder width of the file.
        target_length: int. Fixed decoder width; also the longest sequence
            `LiteRTTwin.generate` can produce.
        batch_size: int. Fixed batch of the file.
        optimize: bool. `False` gives a plain float32 file (a baseline).

    Returns:
        The flatbuffer, as bytes.

    Example:

    ```python
    data = to_tflite_int8(result.model)
    print(op_summary(data)["float_ops"])
    ```
    """
    import tensorflow as tf

    shapes = {
        "encoder_token_ids": (batch_size, source_length),
        "decoder_token_ids": (batch_size, target_length),
    }
    signature = [tf.TensorSpec(shapes[name], tf.int32, name=name) for name in INPUTS]

    @tf.function(input_signature=signature)
    def serve(encoder_token_ids, decoder_token_ids):
        inputs = dict(zip(INPUTS, (encoder_token_ids, decoder_token_ids), strict=True))
        return {"logits": model(inputs, training=False)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], model
    )
    if optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if optimize and representative is not None:
        samples = [
            [_fit_width(sample[name], shapes[name]) for name in INPUTS]
            for sample in representative
        ]
        if not samples:
            raise UserError(
                "The representative dataset is empty; pass at least one input "
                "dict from the training split. Received: representative=[]"
            )
        converter.representative_dataset = lambda: iter(samples)
    return converter.convert()


def op_summary(tflite):
    """Counts a `.tflite` file's op types, and those that compute in float.

    Args:
        tflite: the flatbuffer bytes, or a path.

    Returns:
        A dict: `ops`, op name -> count; `float_ops`, op name -> count of
        ops (other than QUANTIZE and DEQUANTIZE) with a float32 output;
        `hybrid_ops`, op name -> count of float ops whose weight input is
        int8 (dynamic-range kernels); `full_int8`, True when `float_ops`
        is empty.
    """
    from tfaccel.export.tflite import op_report

    rows = op_report(tflite)
    ops = collections.Counter(row["op"] for row in rows)
    floats = [
        row
        for row in rows
        if row["op"] not in _CONVERSIONS and "FLOAT32" in row["outputs"]
    ]
    hybrid = [row for row in floats if "INT8" in row["inputs"][1:2]]
    return {
        "ops": dict(ops),
        "float_ops": dict(collections.Counter(row["op"] for row in floats)),
        "hybrid_ops": dict(collections.Counter(row["op"] for row in hybrid)),
        "full_int8": not floats,
    }


class LiteRTTwin:
    """A twin's `.tflite` file run in LiteRT's interpreter.

    Args:
        model: the flatbuffer bytes, or a path to a `.tflite` file.
        num_threads: int. Interpreter threads.

    Example:

    ```python
    lite = LiteRTTwin(to_tflite_int8(result.model, target_length=32))
    tokens = lite.generate(source_ids, max_length=20)
    ```
    """

    def __init__(self, model, num_threads=1):
        from tfaccel.export.tflite import load_interpreter

        self.interpreter = load_interpreter(model, num_threads)
        self._run = self.interpreter.get_signature_runner()
        details = self._run.get_input_details()
        self.batch_size, self.source_length = (
            int(d) for d in details["encoder_token_ids"]["shape"]
        )
        self.target_length = int(details["decoder_token_ids"]["shape"][1])

    def logits(self, encoder_token_ids, decoder_token_ids):
        """Teacher-forced logits `(batch, target_length, vocab)`; inputs zero-padded."""
        encoder = self._pad(encoder_token_ids, self.source_length)
        decoder = self._pad(decoder_token_ids, self.target_length)
        outputs = self._run(encoder_token_ids=encoder, decoder_token_ids=decoder)
        return outputs["logits"]

    def generate(self, encoder_token_ids, max_length=None, stop_at_eos=True):
        """Greedy decoding without a cache, as `Seq2SeqTransformer.generate`.

        Rows are decoded `batch_size` at a time (the file's fixed batch); a
        short last group is padded with empty rows.

        Args:
            encoder_token_ids: int array `(batch, src)`; 0 is padding.
            max_length: int. Most tokens to generate, EOS included; at most
                the file's `target_length` (its default).
            stop_at_eos: bool. With `False`, every step runs.

        Returns:
            int32 array `(batch, max_length)`, EOS then 0 after it, no BOS.
        """
        max_length = max_length or self.target_length
        if not 0 < max_length <= self.target_length:
            raise ValueError(
                "`max_length` must be in [1, target_length]. Received: "
                f"max_length={max_length}, target_length={self.target_length}"
            )
        ids = np.asarray(encoder_token_ids, np.int32)
        groups = [
            self._generate_group(ids[i : i + self.batch_size], max_length, stop_at_eos)
            for i in range(0, len(ids), self.batch_size)
        ]
        return np.concatenate(groups)[:, 1 : max_length + 1]

    def _generate_group(self, ids, max_length, stop_at_eos):
        from tfaccel.export.generation import greedy

        rows = len(ids)
        encoder = np.zeros((self.batch_size, self.source_length), np.int32)
        encoder[:rows] = _fit_width(ids, (rows, self.source_length))
        tokens = np.zeros((self.batch_size, self.target_length + 1), np.int32)
        tokens[:, 0] = BOS_ID
        done = np.zeros(self.batch_size, bool)
        done[rows:] = True
        for index in range(max_length):
            outputs = self._run(
                encoder_token_ids=encoder,
                decoder_token_ids=tokens[:, : self.target_length],
            )
            next_token = greedy(outputs["logits"][:, index])
            if stop_at_eos:
                next_token = np.where(done, PAD_ID, next_token)
                done |= next_token == EOS_ID
            tokens[:, index + 1] = next_token
            if stop_at_eos and done.all():
                break
        return tokens[:rows]

    def _pad(self, ids, width):
        return _fit_width(ids, (self.batch_size, width))


def _fit_width(ids, shape):
    """Zero-pads int ids to `shape`; raises if they are longer or the batch differs."""
    ids = np.asarray(ids, np.int32)
    if ids.ndim != 2 or ids.shape[0] != shape[0] or ids.shape[1] > shape[1]:
        raise UserError(
            f"Token ids must have shape (batch={shape[0]}, length <= {shape[1]}) "
            "to fit this TFLite file; convert with another batch_size or "
            f"length. Received: shape={ids.shape}"
        )
    padded = np.zeros(shape, np.int32)
    padded[:, : ids.shape[1]] = ids
    return padded
