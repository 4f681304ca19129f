"""The first steps of `keras.layers.MultiHeadAttention`'s explicit path.

Techniques and exporters that replace a layer's `_compute_attention` (QAT's
int8 matmuls, the TFLite export's bounded mask) begin as Keras does: join
the causal mask into the attention mask, and scale the query.
"""

from keras import ops


def prepare(layer, query, value, attention_mask, use_causal_mask):
    """Returns `(scaled query, attention mask)` as Keras's own path has them.

    Args:
        layer: the `keras.layers.MultiHeadAttention`.
        query: the projected query.
        value: the projected value (its length sets the causal mask's).
        attention_mask: None, or the boolean mask the layer was called with.
        use_causal_mask: whether to also mask future positions.
    """
    if use_causal_mask:
        causal = layer._compute_causal_mask(query, value)
        attention_mask = (
            causal
            if attention_mask is None
            else ops.logical_and(ops.cast(attention_mask, "bool"), causal)
        )
    query = ops.multiply(query, ops.cast(layer._inverse_sqrt_key_dim, query.dtype))
    return query, attention_mask
