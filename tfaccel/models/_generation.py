"""Greedy generation with a key/value cache for `Seq2SeqTransformer`.

`CachedGeneration` is a mixin of the methods that decode one position at a
time: the encoder output is projected into cross-attention keys and values
once (`encode`), each step reads and extends a fixed-size self-attention
cache (`decode_step`), and `generate` runs the whole greedy loop as one
compiled TensorFlow graph. It expects the attributes `Seq2SeqTransformer`
sets: the embeddings, `decoder_layers`, `lm_head`, the sizes, `_encode`,
and a `_generate_functions` dict.
"""

from keras import ops

# Token ids every task's vocabulary reserves: padding, start and end of a
# target sequence.
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2


class CachedGeneration:
    """Cached decoding and greedy generation, mixed into `Seq2SeqTransformer`."""

    def encode(self, encoder_token_ids):
        """Runs the encoder and projects its output into cross-attention caches.

        Args:
            encoder_token_ids: int tensor of shape `(batch, src)`; 0 is padding.

        Returns:
            A tuple `(cross_cache, encoder_mask)`: `cross_cache` has shape
            `(batch, decoder_layers, 2, src, heads, head_dim)` and holds each
            decoder layer's cross-attention keys and values; `encoder_mask` is
            a bool tensor of shape `(batch, src)`.
        """
        encoder_out, encoder_mask = self._encode(encoder_token_ids)
        caches = []
        for layer in self.decoder_layers:
            # keras-hub computes cross-attention keys and values from the
            # encoder output alone, so they are projected once here.
            attention = layer._cross_attention_layer
            key = attention._key_dense(encoder_out)  # (batch, src, heads, head_dim)
            value = attention._value_dense(encoder_out)
            caches.append(ops.stack([key, value], axis=1))
        return ops.stack(caches, axis=1), encoder_mask

    def init_cache(self, batch_size, length):
        """Returns a zero self-attention cache for `length` decoder positions.

        The shape is `(batch, decoder_layers, 2, length, heads, head_dim)`.
        """
        shape = (
            batch_size,
            self.num_decoder_layers,
            2,
            length,
            self.num_heads,
            self.head_dim,
        )
        return ops.zeros(shape, dtype=self.compute_dtype)

    def decode_step(self, token_ids, index, self_cache, cross_cache, encoder_mask):
        """Decodes one position, reading and updating the key/value cache.

        Args:
            token_ids: int tensor `(batch, 1)`, the token at position `index`.
            index: int scalar, the position being decoded.
            self_cache: the cache from `init_cache` or the previous step.
            cross_cache: the cross-attention cache from `encode`.
            encoder_mask: the encoder padding mask from `encode`.

        Returns:
            A tuple `(logits, self_cache)`: logits `(batch, vocab)` for the
            next token, and the cache with position `index` filled in.
        """
        x = self.decoder_embedding(token_ids, start_index=index)  # (batch, 1, hidden)
        new_caches = []
        for i, layer in enumerate(self.decoder_layers):
            # `take`, not `[:, i]`: TFLite's STRIDED_SLICE (used by its
            # calibrator) only takes up to 5-D inputs; the caches are 6-D.
            cross = ops.take(cross_cache, i, axis=1)  # (batch, 2, src, heads, head_dim)
            # With a static cross cache keras-hub ignores the encoder sequence
            # values; it only needs a tensor there to enable cross-attention.
            x, cache, _ = layer(
                x,
                cross[:, 0],
                encoder_padding_mask=encoder_mask,
                self_attention_cache=ops.take(self_cache, i, axis=1),
                self_attention_cache_update_index=index,
                cross_attention_cache=cross,
                cross_attention_cache_update_index=None,
            )
            new_caches.append(cache)
        logits = self.lm_head(x)[:, 0, :]  # (batch, vocab)
        return logits, ops.stack(new_caches, axis=1)

    def generate(
        self, encoder_token_ids, max_length=None, use_cache=True, stop_at_eos=True
    ):
        """Greedy decoding of whole sequences.

        Args:
            encoder_token_ids: int array `(batch, src)`; 0 is padding.
            max_length: int. Most tokens to generate, EOS included. Defaults
                to `max_decoder_length - 1`.
            use_cache: bool. With `True`, each step decodes one position with
                a key/value cache (O(n)). With `False`, each step re-runs the
                full decoder on the whole prefix (O(n^2)); both give the same
                tokens.
            stop_at_eos: bool. With `False`, every sequence runs for all
                `max_length` steps, as a benchmark of fixed length wants.

        Returns:
            An int32 array `(batch, max_length)` of generated ids, ending with
            EOS (2) and padded with 0 after it; BOS is not included.
        """
        max_length = max_length or self.max_decoder_length - 1
        if not 0 < max_length < self.max_decoder_length:
            raise ValueError(
                "`max_length` must be in [1, max_decoder_length - 1]. "
                f"Received: max_length={max_length}, "
                f"max_decoder_length={self.max_decoder_length}"
            )
        key = (max_length, use_cache, stop_at_eos)
        if key not in self._generate_functions:
            self._generate_functions[key] = _compile(
                lambda ids: self._generate(ids, max_length, use_cache, stop_at_eos)
            )
        encoder_token_ids = ops.convert_to_tensor(encoder_token_ids, dtype="int32")
        return ops.convert_to_numpy(self._generate_functions[key](encoder_token_ids))

    def _generate(self, encoder_token_ids, max_length, use_cache, stop_at_eos):
        batch = ops.shape(encoder_token_ids)[0]
        # Decoder input: BOS, then each generated token. (batch, max_length + 1)
        tokens = ops.pad(
            ops.full((batch, 1), BOS_ID, dtype="int32"), [[0, 0], [0, max_length]]
        )
        done = ops.zeros((batch,), dtype="bool")
        if use_cache:
            cross_cache, encoder_mask = self.encode(encoder_token_ids)
            state = (self.init_cache(batch, max_length),)
        else:
            state = ()

        def step(index, tokens, done, *state):
            if use_cache:
                token = ops.slice(tokens, [0, index], [batch, 1])
                logits, cache = self.decode_step(
                    token, index, state[0], cross_cache, encoder_mask
                )
                state = (cache,)
            else:
                inputs = {
                    "encoder_token_ids": encoder_token_ids,
                    "decoder_token_ids": tokens[:, :max_length],
                }
                logits = ops.take(self(inputs, training=False), index, axis=1)
            next_token = _greedy(logits)
            if stop_at_eos:
                next_token = ops.where(done, PAD_ID, next_token)  # (batch,)
            tokens = ops.slice_update(
                tokens, [0, index + 1], ops.expand_dims(next_token, 1)
            )
            if stop_at_eos:
                done = ops.logical_or(done, ops.equal(next_token, EOS_ID))
            return (index + 1, tokens, done, *state)

        def cond(index, tokens, done, *state):
            return ops.logical_and(index < max_length, ops.logical_not(ops.all(done)))

        _, tokens, _, *_ = ops.while_loop(cond, step, (0, tokens, done, *state))
        return tokens[:, 1:]


def _greedy(logits):
    # Padding and BOS are never valid outputs.
    vocab = ops.shape(logits)[-1]
    banned = ops.less(ops.arange(vocab), EOS_ID)  # ids 0 and 1
    logits = ops.where(banned, ops.cast(-1e9, logits.dtype), logits)
    return ops.cast(ops.argmax(logits, axis=-1), "int32")


def _compile(fn):
    # Generation loops compile into one TensorFlow graph; an eager loop costs
    # tens of milliseconds of Python per token.
    import tensorflow as tf

    return tf.function(fn, reduce_retracing=True)
