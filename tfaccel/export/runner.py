"""The base of every exported model's runner: cached greedy decoding.

A runner wraps one artifact's `encode` and `decode_step` (a SavedModel's
signatures, LiteRT signature runners, ONNX Runtime sessions or TensorRT
engines) as callables taking and returning arrays by the signature names
of `tfaccel.export.signatures`. The subclass loads them and says how wide
the sources and the self-attention cache are; this class decodes, the
same way for every runtime, with the API of `Seq2SeqTransformer.generate`.
"""

from tfaccel.export import generation


class Runner:
    """Greedy decoding with a key/value cache through two runtime calls.

    Subclasses load their artifact, then call `__init__` with:

    Args:
        encode: callable taking `encoder_token_ids=` and returning a mapping
            with `cross_cache` and `encoder_mask`.
        decode: callable taking `token_ids=`, `index=`, `self_cache=`,
            `cross_cache=` and `encoder_mask=`, returning a mapping with
            `logits` and `self_cache`.
        cache_shape: the self-attention cache shape without the batch axis,
            `(layers, 2, target_length, heads, head_dim)`.
        source_length: int, the exported encoder width.

    Attributes:
        source_length: the widest source it takes.
        target_length: the cache length: the most tokens it generates.
    """

    def __init__(self, encode, decode, cache_shape, source_length):
        self._encode = encode
        self._decode = decode
        self._cache_shape = tuple(int(d) for d in cache_shape)
        self.source_length = int(source_length)
        self.target_length = self._cache_shape[2]

    def generate(self, encoder_token_ids, max_length=None, stop_at_eos=True):
        """Greedy decoding with the key/value cache, like the Keras model's.

        Args:
            encoder_token_ids: int array `(batch, <= source_length)`; 0 pads.
            max_length: most tokens to generate; None (or more than the
                cache holds) for `target_length`.
            stop_at_eos: stop once every row has produced EOS.

        Returns:
            int32 `(batch, max_length)`: the tokens, EOS included, then 0s.
        """
        return generation.generate_with_signatures(
            self._encode,
            self._decode,
            encoder_token_ids,
            max_length,
            self.source_length,
            self._cache_shape,
            stop_at_eos,
        )

    def first_steps(self, padded_ids, tokens=(1, 5)):
        """Logits of the first decode steps (`generation.first_steps`)."""
        return generation.first_steps(
            self._encode, self._decode, padded_ids, self._cache_shape, tokens
        )
