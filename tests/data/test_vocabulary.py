import pytest

from tfaccel.data import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary


def test_reserved_ids():
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)


def test_encode_starts_real_tokens_at_four():
    vocab = Vocabulary(["a", "b"])
    assert vocab.size == 6
    assert vocab.encode("abz") == [4, 5, UNK_ID]
    assert vocab.encode(["b", "a"]) == [5, 4]
    assert vocab.encode("") == []


def test_encode_phone_tuple():
    vocab = Vocabulary(["AE", "K", "T"])
    assert vocab.encode(("K", "AE", "T", "ZH")) == [5, 4, 6, 3]


def test_decode_skips_pad_bos_and_stops_at_eos():
    vocab = Vocabulary(["a", "b"])
    assert vocab.decode([BOS_ID, 4, PAD_ID, 5, EOS_ID, 4, 4]) == ["a", "b"]
    assert vocab.decode([4, UNK_ID, 99]) == ["a", "<unk>", "<unk>"]


def test_from_corpus_is_sorted_and_deterministic():
    vocab = Vocabulary.from_corpus(["cab", "abc", "d"])
    assert vocab.tokens == ["a", "b", "c", "d"]
    assert Vocabulary.from_corpus(["d", "cab"]) == vocab


def test_config_and_file_round_trip(tmp_path):
    vocab = Vocabulary(["AH", "B", "ñ"])
    assert Vocabulary.from_config(vocab.get_config()) == vocab
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded == vocab
    assert loaded.encode(["ñ", "AH"]) == [6, 4]


@pytest.mark.parametrize("tokens", [["a", "a"], ["a", "<unk>"]])
def test_rejects_duplicate_or_reserved_tokens(tokens):
    with pytest.raises(ValueError, match="Received"):
        Vocabulary(tokens)
