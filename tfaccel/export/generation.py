"""Cached greedy decoding shared by the runtimes' generation helpers.

Every exported model has the `encode` and `decode_step` signatures; this
loop drives them the same way for each runtime (LiteRT, SavedModel, and
later ONNX Runtime and TensorRT), with the API of
`Seq2SeqTransformer.generate`, so a task scores and a benchmark times them
alike.
"""

import numpy as np

from tfaccel.errors import UserError


def greedy(logits):
    """Argmax over the vocabulary, never padding (0) or BOS (1)."""
    from tfaccel.models.seq2seq_transformer import EOS_ID

    logits = np.array(logits, dtype=np.float32, copy=True)
    logits[:, :EOS_ID] = -np.inf
    return logits.argmax(axis=-1).astype(np.int32)


def cached_generate(
    encode,
    decode,
    encoder_token_ids,
    max_length,
    source_length,
    cache_shape,
    stop_at_eos=True,
):
    """Greedy decoding with a key/value cache through two runtime calls.

    Args:
        encode: `f(padded_ids) -> (cross_cache, encoder_mask)`, numpy arrays.
        decode: `f(token_ids, index, self_cache, cross_cache, encoder_mask)
            -> (logits, self_cache)`, numpy arrays.
        encoder_token_ids: int array `(batch, <= source_length)`; 0 pads.
        max_length: int, most tokens to generate (at most the cache length).
        source_length: int, the exported encoder width.
        cache_shape: the self-attention cache shape without the batch axis.
        stop_at_eos: stop when every sequence has produced EOS.

    Returns:
        int32 `(batch, max_length)`: the tokens, EOS included, then 0s.
    """
    from tfaccel.models.seq2seq_transformer import BOS_ID, EOS_ID, PAD_ID

    ids = np.asarray(encoder_token_ids, dtype=np.int32)
    batch, width = ids.shape
    if width > source_length:
        raise UserError(
            f"Sources of {width} ids do not fit the exported width "
            f"{source_length}; export with a larger source length."
        )
    max_length = min(max_length or cache_shape[2], cache_shape[2])
    padded = np.zeros((batch, source_length), np.int32)
    padded[:, :width] = ids
    cross, mask = encode(padded)
    cache = np.zeros((batch, *cache_shape), np.float32)
    tokens = np.zeros((batch, max_length), np.int32)
    token = np.full((batch, 1), BOS_ID, np.int32)
    done = np.zeros(batch, bool)
    for index in range(max_length):
        logits, cache = decode(token, np.array(index, np.int32), cache, cross, mask)
        next_token = greedy(logits)
        if stop_at_eos:
            next_token = np.where(done, PAD_ID, next_token)
        tokens[:, index] = next_token
        token = next_token[:, None]
        if stop_at_eos:
            done |= next_token == EOS_ID
            if done.all():
                break
    return tokens


def generate_with_signatures(
    encode,
    decode,
    encoder_token_ids,
    max_length,
    source_length,
    cache_shape,
    stop_at_eos=True,
):
    """`cached_generate` over runtime signatures called by input name.

    Args:
        encode: callable taking `encoder_token_ids=` and returning a mapping
            with `cross_cache` and `encoder_mask` (a LiteRT signature runner
            or a SavedModel signature).
        decode: callable taking `token_ids=`, `index=`, `self_cache=`,
            `cross_cache=` and `encoder_mask=`, returning a mapping with
            `logits` and `self_cache`.
        Other arguments: as `cached_generate`.
    """

    def encode_arrays(ids):
        out = encode(encoder_token_ids=ids)
        return np.asarray(out["cross_cache"]), np.asarray(out["encoder_mask"])

    def decode_arrays(token, index, cache, cross, mask):
        out = decode(
            token_ids=token,
            index=index,
            self_cache=cache,
            cross_cache=cross,
            encoder_mask=mask,
        )
        return np.asarray(out["logits"]), np.asarray(out["self_cache"])

    return cached_generate(
        encode_arrays,
        decode_arrays,
        encoder_token_ids,
        max_length,
        source_length,
        cache_shape,
        stop_at_eos,
    )


def first_steps(encode, decode, padded_ids, cache_shape, tokens=(1, 5)):
    """Logits of the first decode steps through runtime signatures.

    Feeds `tokens[i]` at position `i` (BOS, then an ordinary token), so both
    the empty and a filled self-attention cache are exercised.

    Args:
        encode, decode: signature callables, as `generate_with_signatures`.
        padded_ids: int32 sources `(batch, source_length)`.
        cache_shape: the self-attention cache shape without the batch axis.
        tokens: the token fed at each step.

    Returns:
        float32 `(len(tokens) * batch, vocab)`, the steps' logits stacked.
    """
    ids = np.asarray(padded_ids, np.int32)
    encoded = encode(encoder_token_ids=ids)
    cross = np.asarray(encoded["cross_cache"])
    mask = np.asarray(encoded["encoder_mask"])
    cache = np.zeros((len(ids), *cache_shape), np.float32)
    logits = []
    for index, token in enumerate(tokens):
        out = decode(
            token_ids=np.full((len(ids), 1), token, np.int32),
            index=np.array(index, np.int32),
            self_cache=cache,
            cross_cache=cross,
            encoder_mask=mask,
        )
        cache = np.asarray(out["self_cache"])
        logits.append(np.asarray(out["logits"], np.float32))
    return np.concatenate(logits)
