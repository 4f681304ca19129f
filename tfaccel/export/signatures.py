"""The generation signatures every runtime gets: `encode` and `decode_step`.

An encoder-decoder is exported as two functions with a fixed-size key/value
cache (DESIGN.md, principle 6), so that a deployed model decodes each token
in O(1) model work:

- `encode(encoder_token_ids: int32 (batch, source))` returns `cross_cache`
  `(batch, layers, 2, source, heads, head_dim)` and `encoder_mask`
  `(batch, source)` (float32, 1 for a real token);
- `decode_step(token_ids: int32 (batch, 1), index: int32 (), self_cache
  (batch, layers, 2, target, heads, head_dim), cross_cache, encoder_mask)`
  returns `logits (batch, vocab)` and the updated `self_cache`.

The mask is float rather than bool because every runtime (TFLite, ONNX
Runtime, TensorRT) takes float inputs.
"""

import keras
import tensorflow as tf
from keras import ops

ENCODE = "encode"
DECODE_STEP = "decode_step"


def cache_shapes(model, source_length, target_length, batch=None):
    """Returns `(self_cache_shape, cross_cache_shape)` for the signatures."""
    layers, heads, dim = model.num_decoder_layers, model.num_heads, model.head_dim
    return (
        (batch, layers, 2, target_length, heads, dim),
        (batch, layers, 2, source_length, heads, dim),
    )


def generation_archive(model, source_length, target_length, batch=None):
    """Returns a `keras.export.ExportArchive` with the two signatures.

    Args:
        model: a `Seq2SeqTransformer` (or any model with its `encode` and
            `decode_step` methods).
        source_length: int, the encoder width, or None for any width.
        target_length: int, the cache length: the most tokens decoded.
        batch: int or None (any batch size).
    """
    self_shape, cross_shape = cache_shapes(model, source_length, target_length, batch)
    dtype = model.compute_dtype

    def encode(encoder_token_ids):
        cross_cache, mask = model.encode(encoder_token_ids)
        return {"cross_cache": cross_cache, "encoder_mask": ops.cast(mask, "float32")}

    def decode_step(token_ids, index, self_cache, cross_cache, encoder_mask):
        logits, cache = model.decode_step(
            token_ids, index, self_cache, cross_cache, ops.greater(encoder_mask, 0.5)
        )
        return {"logits": ops.cast(logits, "float32"), "self_cache": cache}

    archive = keras.export.ExportArchive()
    archive.track(model)
    _track_tf_variables(archive)
    archive.add_endpoint(
        ENCODE,
        encode,
        input_signature=[
            tf.TensorSpec((batch, source_length), tf.int32, "encoder_token_ids")
        ],
    )
    archive.add_endpoint(
        DECODE_STEP,
        decode_step,
        input_signature=[
            tf.TensorSpec((batch, 1), tf.int32, "token_ids"),
            tf.TensorSpec((), tf.int32, "index"),
            tf.TensorSpec(self_shape, dtype, "self_cache"),
            tf.TensorSpec(cross_shape, dtype, "cross_cache"),
            tf.TensorSpec((batch, source_length), tf.float32, "encoder_mask"),
        ],
    )
    return archive


def _track_tf_variables(archive):
    """Tracks each weight once in the SavedModel, not twice.

    `ExportArchive.track` keeps the `keras.Variable` wrappers, while the
    traced endpoints capture the `tf.Variable`s inside them. The checkpoint
    de-duplicates by object, so every weight was written twice (and loaded
    twice, in TF Serving too): keras-team/keras#23553, open in Keras 3.15.
    Tracking the `tf.Variable`s themselves makes the two one object.
    """
    trackable = archive._tf_trackable
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        unwrapped = [getattr(v, "_value", v) for v in getattr(trackable, name)]
        setattr(trackable, name, unwrapped)
