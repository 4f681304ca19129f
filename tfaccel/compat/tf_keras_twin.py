"""A tf_keras (Keras 2) functional twin of `tfaccel.models.Seq2SeqTransformer`.

The twin is what a tf_keras user would write for the same architecture: a
functional model of stock tf_keras layers (`Embedding`, `MultiHeadAttention`,
`LayerNormalization`, `Dense`, `Dropout`, `Add`), with the masks built from
plain TensorFlow ops on the inputs. It has the Keras 3 model's sizes and
post-norm math, and `copy_weights` loads a trained Keras 3 model into it, so
its teacher-forced logits match the Keras 3 model's (to about 1e-6). It is
the starting point of the tfmot peer (`tfaccel.compat.tfmot_prune_qat`).

Each twin layer is named after the Keras 3 sublayer it copies, with `/`
replaced by `_` (`decoder_layer_0_cross_attention`), so tfaccel's targets
such as `.*(attention|feedforward).*` pick the same layers in both models.
Positions are looked up with an `Embedding` over `0..length-1`, the same
table rows that keras-hub's `PositionEmbedding` slices.
"""

from tfaccel.compat._deps import tf_keras

PAD_ID = 0


def build_twin(config):
    """Builds an untrained tf_keras twin from a Seq2SeqTransformer config.

    Args:
        config: dict, `Seq2SeqTransformer.get_config()` (or its arguments).

    Returns:
        A functional `tf_keras.Model` called with a dict of int32
        `encoder_token_ids` `(batch, src)` and `decoder_token_ids`
        `(batch, tgt)`, returning logits `(batch, tgt, decoder_vocabulary)`.

    Example:

    ```python
    twin = build_twin(model.get_config())
    copy_weights(model, twin)
    ```
    """
    keras2 = tf_keras()
    c = _resolved(config)
    encoder_ids = keras2.Input((None,), dtype="int32", name="encoder_token_ids")
    decoder_ids = keras2.Input((None,), dtype="int32", name="decoder_token_ids")
    x = _embed(encoder_ids, "encoder", c["encoder_vocabulary_size"], c)
    encoder_keep = _key_mask(encoder_ids)  # (batch, 1, src)
    for i in range(c["num_encoder_layers"]):
        x = _encoder_layer(x, encoder_keep, f"encoder_layer_{i}", c)
    y = _embed(decoder_ids, "decoder", c["decoder_vocabulary_size"], c)
    decoder_keep = _key_mask(decoder_ids)  # (batch, 1, tgt); causal added by MHA
    for i in range(c["num_decoder_layers"]):
        y = _decoder_layer(y, x, decoder_keep, encoder_keep, f"decoder_layer_{i}", c)
    logits = keras2.layers.Dense(c["decoder_vocabulary_size"], name="lm_head")(y)
    return keras2.Model(
        {"encoder_token_ids": encoder_ids, "decoder_token_ids": decoder_ids},
        logits,
        name=f"{c['name']}_tf_keras_twin",
    )


def copy_weights(model, twin):
    """Copies a Keras 3 `Seq2SeqTransformer`'s weights into its twin.

    Args:
        model: the Keras 3 model.
        twin: a twin from `build_twin(model.get_config())`.

    Raises:
        ValueError: a twin layer whose weights have no same-shaped
            counterpart in `model`.
    """
    by_path = {}
    for variable in model.weights:
        layer_path, _, _ = variable.path.rpartition("/")
        by_path.setdefault(_twin_name(layer_path), []).append(variable)
    for layer in twin.layers:
        if not layer.weights:
            continue
        # An attention layer's four projections are one twin layer.
        source = by_path.get(layer.name) or _attention_weights(by_path, layer.name)
        values = [v.numpy() for v in source]
        shapes = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != shapes:
            raise ValueError(
                f"Twin layer '{layer.name}' has weights {shapes}, the Keras 3 model "
                f"{[v.shape for v in values]}. Build the twin from this model's "
                f"get_config(). Received: layer={layer.name}"
            )
        layer.set_weights(values)


def twin_from_model(model):
    """Returns the tf_keras twin of a Keras 3 `Seq2SeqTransformer`, weights copied."""
    twin = build_twin(model.get_config())
    copy_weights(model, twin)
    return twin


# === Layers ===


def _embed(ids, prefix, vocabulary_size, c):
    layers = tf_keras().layers
    tokens = layers.Embedding(
        vocabulary_size, c["hidden_dim"], name=f"{prefix}_embedding_token_embedding"
    )(ids)
    positions = layers.Embedding(
        c[f"max_{prefix}_length"],
        c["hidden_dim"],
        name=f"{prefix}_embedding_position_embedding",
    )(_positions(ids))
    return layers.Add(name=f"{prefix}_embedding")([tokens, positions])


def _positions(ids):
    import tensorflow as tf

    # (batch, length): 0..length-1 in every row. A cumulative sum rather than
    # `tf.range(tf.shape(ids)[1])`: tfmot's `quantize_apply` rebuilds the
    # model from its config, and the rebuilt shape slice fails ("slice index
    # 1 of dimension 0 out of bounds").
    return tf.cumsum(tf.ones_like(ids), axis=1) - 1


def _key_mask(ids):
    import tensorflow as tf

    return tf.expand_dims(tf.not_equal(ids, PAD_ID), axis=1)  # (batch, 1, length)


def _encoder_layer(x, keep, name, c):
    attention = _attention(f"{name}_self_attention_layer", c)
    a = attention(x, x, attention_mask=keep)
    x = _residual_norm(x, a, f"{name}_self_attention", c)
    return _feedforward(x, name, c)


def _decoder_layer(y, encoded, keep, encoder_keep, name, c):
    self_attention = _attention(f"{name}_self_attention", c)
    a = self_attention(y, y, attention_mask=keep, use_causal_mask=True)
    y = _residual_norm(y, a, f"{name}_self_attention", c)
    cross_attention = _attention(f"{name}_cross_attention", c)
    a = cross_attention(y, encoded, attention_mask=encoder_keep)
    y = _residual_norm(y, a, f"{name}_cross_attention", c)
    return _feedforward(y, name, c)


def _attention(name, c):
    return tf_keras().layers.MultiHeadAttention(
        num_heads=c["num_heads"],
        key_dim=c["head_dim"],
        value_dim=c["head_dim"],
        dropout=c["dropout"],
        name=name,
    )


def _feedforward(x, name, c):
    layers = tf_keras().layers
    h = layers.Dense(
        c["intermediate_dim"],
        activation=c["activation"],
        name=f"{name}_feedforward_intermediate_dense",
    )(x)
    h = layers.Dense(c["hidden_dim"], name=f"{name}_feedforward_output_dense")(h)
    return _residual_norm(x, h, f"{name}_feedforward", c)


def _residual_norm(residual, x, name, c):
    # Post-norm, as keras-hub's layers with `normalize_first=False`.
    layers = tf_keras().layers
    x = layers.Dropout(c["dropout"], name=f"{name}_dropout")(x)
    x = layers.Add(name=f"{name}_residual")([x, residual])
    return layers.LayerNormalization(epsilon=1e-5, name=f"{name}_layer_norm")(x)


# === Config ===


def _resolved(config):
    c = dict(config)
    c.setdefault("name", "seq2seq_transformer")
    c.setdefault("dropout", 0.1)
    c.setdefault("activation", "relu")
    if c.get("head_dim") is None:
        c["head_dim"] = c["hidden_dim"] // c["num_heads"]
    return c


def _twin_name(layer_path):
    return layer_path.replace("/", "_")


def _attention_weights(by_path, name):
    # Keras 3 keeps the projections as sublayers: `<name>_query`, and so on.
    parts = ("query", "key", "value", "attention_output")
    found = [by_path.get(f"{name}_{part}") for part in parts]
    if not all(found):
        raise ValueError(
            f"No Keras 3 weights for twin layer '{name}'. Build the twin from "
            f"this model's get_config(). Received: layer={name}"
        )
    return [variable for pair in found for variable in pair]
