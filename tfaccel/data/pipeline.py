"""tf.data pipelines for sequence-to-sequence training and evaluation.

Every example is encoded up front with the vocabularies, so building a
dataset for ~120k pairs takes about a second; tf.data then only shuffles,
buckets by length, pads and prefetches.
"""

import itertools

import numpy as np
import tensorflow as tf

from tfaccel.data.vocabulary import BOS_ID, EOS_ID, PAD_ID

# Padded lengths tried in order; the ladder is cut after the first boundary
# that covers the longest example (so G2P gets [8, 12, 16, 24, 32]).
DEFAULT_BUCKET_BOUNDARIES = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def _encode_all(items, vocab, tokenize, max_length):
    """Returns a list of id lists, one per item, truncated to `max_length`."""
    tokenize = tokenize or (lambda item: item)
    return [vocab.encode(tokenize(item))[:max_length] for item in items]


def _ragged(sequences, prefix=(), suffix=()):
    """Returns an int32 `tf.RaggedTensor` of `prefix + seq + suffix` rows."""
    rows = [list(prefix) + seq + list(suffix) for seq in sequences]
    lengths = np.fromiter((len(row) for row in rows), np.int64, len(rows))
    values = np.fromiter(itertools.chain.from_iterable(rows), np.int32, lengths.sum())
    return tf.RaggedTensor.from_row_lengths(values, lengths)


def _round_up(n, multiple=8):
    return -(-n // multiple) * multiple


def resolve_bucket_boundaries(bucket_boundaries, longest):
    """Returns bucket boundaries (padded lengths) that cover `longest`.

    Args:
        bucket_boundaries: increasing padded lengths, or None for the
            `DEFAULT_BUCKET_BOUNDARIES` ladder cut after the first boundary
            that covers `longest`.
        longest: the largest example length.

    Returns:
        A list of increasing ints whose last one is >= `longest`; if the given
        ones fall short, `longest` rounded up to a multiple of 8 is appended.
    """
    if bucket_boundaries is None:
        bounds = [b for b in DEFAULT_BUCKET_BOUNDARIES if b < longest]
        bounds += [b for b in DEFAULT_BUCKET_BOUNDARIES if b >= longest][:1]
    else:
        bounds = [int(b) for b in bucket_boundaries]
        if (
            not bounds
            or any(b <= a for a, b in zip(bounds[:-1], bounds[1:], strict=True))
            or bounds[0] < 1
        ):
            raise ValueError(
                "`bucket_boundaries` must be a non-empty list of increasing "
                f"positive ints. Received: bucket_boundaries={bucket_boundaries}"
            )
    if not bounds or bounds[-1] < longest:
        bounds.append(_round_up(longest))
    return bounds


def _to_model_inputs(source, decoder_input, target):
    inputs = {"encoder_token_ids": source, "decoder_token_ids": decoder_input}
    return inputs, target, tf.cast(tf.not_equal(target, PAD_ID), tf.float32)


def make_dataset(
    pairs,
    source_vocab,
    target_vocab,
    batch_size,
    *,
    shuffle=False,
    seed=0,
    bucket_boundaries=None,
    drop_remainder=False,
    tokenize_source=None,
    tokenize_target=None,
    max_source_length=None,
    max_target_length=None,
):
    """Builds a bucketed, padded `tf.data.Dataset` for teacher-forced training.

    Each element is `(inputs, targets, sample_weight)` with
    `inputs = {"encoder_token_ids": (B, L), "decoder_token_ids": (B, L)}`,
    `decoder_token_ids = [BOS] + target`, `targets = target + [EOS]` and
    `sample_weight = float32(targets != PAD)`. Id 0 is padding. The encoder
    side gets no BOS/EOS.

    Batches are grouped by `max(len(source), len(target) + 1)` and every
    tensor of a batch is padded to exactly its bucket's boundary `L`, so
    there are only `len(bucket_boundaries)` shapes (XLA compiles each once).
    An example goes to the first bucket whose boundary is >= its length.

    Args:
        pairs: list of `(source, target)` items, e.g. `(word, phones)` for G2P
            or `(english, spanish)` strings for translation.
        source_vocab: vocabulary whose `encode` takes a source item.
        target_vocab: vocabulary whose `encode` takes a target item.
        batch_size: examples per batch.
        shuffle: shuffle all examples before bucketing, differently on each
            iteration (seeded by `seed`).
        seed: shuffle seed.
        bucket_boundaries: increasing padded lengths; None picks a ladder
            from `DEFAULT_BUCKET_BOUNDARIES`. A final boundary is added if
            the largest does not cover the longest example.
        drop_remainder: drop each bucket's last partial batch.
        tokenize_source: optional callable applied to a source item before
            `source_vocab.encode`.
        tokenize_target: as `tokenize_source`, for targets.
        max_source_length: truncate sources to this many ids.
        max_target_length: truncate targets so that `target + [EOS]` has at
            most this many ids (EOS is kept).

    Returns:
        A `tf.data.Dataset`, prefetched with AUTOTUNE.

    Example:

    >>> corpus = load_g2p(max_words=1000)
    >>> ds = make_dataset(corpus.train, corpus.source_vocab,
    ...                   corpus.target_vocab, batch_size=32, shuffle=True)
    >>> inputs, targets, sample_weight = next(iter(ds))
    """
    if not pairs:
        raise ValueError(f"`pairs` must not be empty. Received: pairs={pairs!r}")
    if batch_size < 1:
        raise ValueError(
            f"`batch_size` must be >= 1. Received: batch_size={batch_size}"
        )
    target_limit = None if max_target_length is None else max_target_length - 1
    sources = _encode_all(
        (s for s, _ in pairs), source_vocab, tokenize_source, max_source_length
    )
    targets = _encode_all(
        (t for _, t in pairs), target_vocab, tokenize_target, target_limit
    )
    longest = max(
        (max(len(s), len(t) + 1) for s, t in zip(sources, targets, strict=True)),
        default=1,
    )
    bounds = resolve_bucket_boundaries(bucket_boundaries, longest)
    ds = tf.data.Dataset.from_tensor_slices(
        (
            _ragged(sources),
            _ragged(targets, prefix=[BOS_ID]),
            _ragged(targets, suffix=[EOS_ID]),
        )
    )
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    # Slices of a ragged tensor come out ragged; an identity map makes them
    # dense 1-D tensors, which `padded_batch` needs.
    ds = ds.map(lambda *example: example)
    ds = ds.bucket_by_sequence_length(
        lambda s, d, t: tf.maximum(tf.shape(s)[0], tf.shape(t)[0]),
        # tf.data puts length < boundary in a bucket padded to boundary - 1.
        bucket_boundaries=[b + 1 for b in bounds],
        bucket_batch_sizes=[batch_size] * (len(bounds) + 1),
        pad_to_bucket_boundary=True,
        drop_remainder=drop_remainder,
    )
    return ds.map(_to_model_inputs).prefetch(tf.data.AUTOTUNE)


def encode_sources(items, vocab, max_length=None, tokenize=None):
    """Encodes source items into a zero-padded int32 array for generation.

    Args:
        items: list of source items (e.g. words or sentences).
        vocab: vocabulary whose `encode` takes an item.
        max_length: truncate each source to this many ids.
        tokenize: optional callable applied to an item before `vocab.encode`.

    Returns:
        int32 array of shape `(len(items), L)`, L the longest encoded source,
        padded with 0 (PAD); no BOS/EOS.

    Example:

    >>> encode_sources(["ab", "a"], Vocabulary(["a", "b"]))
    array([[4, 5],
           [4, 0]], dtype=int32)
    """
    sequences = _encode_all(items, vocab, tokenize, max_length)
    width = max((len(seq) for seq in sequences), default=0)
    array = np.full((len(sequences), width), PAD_ID, np.int32)
    for row, seq in zip(array, sequences, strict=True):
        row[: len(seq)] = seq
    return array
