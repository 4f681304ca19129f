import time

import numpy as np
import pytest

from tfaccel.data import (
    BOS_ID,
    EOS_ID,
    Vocabulary,
    encode_sources,
    load_g2p,
    make_dataset,
)
from tfaccel.data.pipeline import resolve_bucket_boundaries

CHARS = Vocabulary(list("abcdefghij"))  # a=4 ... j=13
PHONES = Vocabulary(["A", "B", "C"])  # A=4, B=5, C=6


def _batches(ds):
    return [
        (x["encoder_token_ids"].numpy(), x["decoder_token_ids"].numpy(), y.numpy(), w)
        for x, y, w in ds
    ]


def test_single_example_layout():
    ds = make_dataset([("abc", ("A", "B"))], CHARS, PHONES, 4, bucket_boundaries=[4])
    [(enc, dec, tgt, weight)] = _batches(ds)
    np.testing.assert_array_equal(enc, [[4, 5, 6, 0]])
    np.testing.assert_array_equal(dec, [[BOS_ID, 4, 5, 0]])
    np.testing.assert_array_equal(tgt, [[4, 5, EOS_ID, 0]])
    np.testing.assert_array_equal(weight.numpy(), [[1, 1, 1, 0]])
    assert enc.dtype == dec.dtype == tgt.dtype == np.int32
    assert weight.dtype.name == "float32"


def test_padded_lengths_are_bucket_boundaries():
    # Example lengths max(len(source), len(target) + 1): 2, 4, 5, 8, 10.
    pairs = [
        ("a", ("A",)),
        ("abcd", ("A",)),
        ("ab", ("A", "B", "C", "A")),
        ("abcdefgh", ("A",)),
        ("abcdefghij", ("C",)),
    ]
    ds = make_dataset(pairs, CHARS, PHONES, 8, bucket_boundaries=[4, 8])
    widths = {}
    for enc, dec, tgt, weight in _batches(ds):
        assert enc.shape[1] == dec.shape[1] == tgt.shape[1]
        np.testing.assert_array_equal(weight.numpy(), tgt != 0)
        widths[enc.shape[1]] = len(enc)
    # [4, 8] cannot hold length 10, so a boundary of 16 is added.
    assert widths == {4: 2, 8: 2, 16: 1}


def test_resolve_bucket_boundaries():
    assert resolve_bucket_boundaries(None, 29) == [8, 12, 16, 24, 32]
    assert resolve_bucket_boundaries(None, 5) == [8]
    assert resolve_bucket_boundaries([4, 8], 8) == [4, 8]
    assert resolve_bucket_boundaries([4, 8], 13) == [4, 8, 16]
    assert resolve_bucket_boundaries(None, 700) == [
        *[8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512],
        704,
    ]
    with pytest.raises(ValueError, match="Received: bucket_boundaries"):
        resolve_bucket_boundaries([8, 4], 3)


def test_truncation_keeps_eos():
    pairs = [("abcdef", ("A", "B", "C", "A", "B"))]
    ds = make_dataset(
        pairs,
        CHARS,
        PHONES,
        1,
        bucket_boundaries=[4],
        max_source_length=3,
        max_target_length=3,
    )
    [(enc, dec, tgt, _)] = _batches(ds)
    np.testing.assert_array_equal(enc, [[4, 5, 6, 0]])
    np.testing.assert_array_equal(dec, [[BOS_ID, 4, 5, 0]])
    np.testing.assert_array_equal(tgt, [[4, 5, EOS_ID, 0]])


def test_tokenize_hooks():
    ds = make_dataset(
        [("a b", "A C")],
        CHARS,
        PHONES,
        1,
        tokenize_source=str.split,
        tokenize_target=str.split,
    )
    [(enc, _, tgt, _)] = _batches(ds)
    np.testing.assert_array_equal(enc[0, :2], [4, 5])
    np.testing.assert_array_equal(tgt[0, :3], [4, 6, EOS_ID])


def _first_sources(ds):
    return [tuple(enc[:, 0]) for enc, *_ in _batches(ds)]


def test_shuffle_is_seeded_and_reshuffles():
    pairs = [(c, ("A",)) for c in "abcdefghij"] * 3
    ds = make_dataset(pairs, CHARS, PHONES, 30, shuffle=True, seed=1)
    first, second = _first_sources(ds), _first_sources(ds)
    assert first != second
    assert (
        sorted(first[0]) == sorted(second[0]) == sorted([4 + i for i in range(10)] * 3)
    )
    again = make_dataset(pairs, CHARS, PHONES, 30, shuffle=True, seed=1)
    assert _first_sources(again) == first


def test_g2p_valid_split_epoch():
    corpus = load_g2p()
    start = time.perf_counter()
    ds = make_dataset(corpus.valid, corpus.source_vocab, corpus.target_vocab, 256)
    assert time.perf_counter() - start < 20
    total, widths = 0, set()
    for x, y, w in ds:
        total += y.shape[0]
        widths.add(y.shape[1])
        assert x["encoder_token_ids"].shape == y.shape == w.shape
    assert total == len(corpus.valid) == 6858
    assert widths <= {8, 12, 16, 24, 32}
    assert 8 in widths


def test_encode_sources():
    array = encode_sources(["abc", "a", "abcdef"], CHARS, max_length=4)
    np.testing.assert_array_equal(array, [[4, 5, 6, 0], [4, 0, 0, 0], [4, 5, 6, 7]])
    assert array.dtype == np.int32
