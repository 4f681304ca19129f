import os

import pytest

from tfaccel.data import TranslationCorpus, _cache, load_translation, translation
from tfaccel.errors import UserError

SWORD = os.environ.get("SWORD_PATH") or "/usr/share/sword"
HAS_SWORD = os.path.isfile(os.path.join(SWORD, "mods.d", "engKJV2006eb.conf"))
needs_sword = pytest.mark.skipif(not HAS_SWORD, reason="SWORD modules not installed")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tfaccel-cache")


@pytest.fixture(scope="module")
def corpus(cache):
    return load_translation(cache_dir=cache)


def test_missing_modules_is_a_user_error(tmp_path, monkeypatch):
    empty = tmp_path / "sword"
    (empty / "mods.d").mkdir(parents=True)
    monkeypatch.setenv("SWORD_PATH", str(empty))
    monkeypatch.setenv("TFACCEL_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(
        UserError, match="apt-get install sword-text-kjv sword-text-sparv"
    ):
        load_translation()
    with pytest.raises(UserError, match="SWORD_PATH") as info:
        load_translation(sword_path=str(tmp_path / "nowhere"))
    assert str(info.value).endswith(f"Received: sword_path={tmp_path / 'nowhere'}")
    assert not (tmp_path / "cache" / translation.CACHE_FILE).exists()


def test_clean_strips_leftover_markup():
    text = "\u00b6 by my name \\nd JEHOVAH was I\n not  known. "
    assert translation._clean(text) == "by my name JEHOVAH was I not known."


def test_split_of_verse_ratios():
    refs = [f"Psalms {c}:{v}" for c in range(1, 151) for v in range(1, 21)]
    splits = [translation.split_of_verse(r) for r in refs]
    assert translation.split_of_verse("Genesis 1:1") == "train"
    assert 0.94 < splits.count("train") / len(refs) < 0.98
    assert splits.count("test") > 0 and splits.count("valid") > 0


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("TFACCEL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.cache_dir() == tmp_path / "xdg" / "tfaccel"
    monkeypatch.setenv("TFACCEL_CACHE_DIR", str(tmp_path / "own"))
    assert _cache.cache_dir() == tmp_path / "own"
    assert _cache.cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_atomic_write_leaves_no_half_file(tmp_path, monkeypatch):
    target = tmp_path / "pairs.tsv"

    def fail(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        _cache.write_atomic(target, "half")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    _cache.write_atomic(target, "whole\n")
    assert target.read_text() == "whole\n"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.large
@needs_sword
def test_pairs_are_extracted_then_cached(cache, monkeypatch):
    triples = translation.load_pairs(cache)
    assert len(triples) == 31084  # 31,102 KJV verses; 18 empty in RV1909.
    ref, english, spanish = triples[0]
    assert ref == "Genesis 1:1"
    assert english.lower().startswith("in the beginning")
    assert spanish.lower().startswith("en el principio")
    assert triples[-1][0] == "Revelation of John 22:21"
    path = cache / translation.CACHE_FILE
    mtime = path.stat().st_mtime_ns

    def no_extraction(*args):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(translation, "extract_pairs", no_extraction)
    monkeypatch.setenv("SWORD_PATH", str(cache / "no-sword-here"))
    assert translation.load_pairs(cache) == triples
    assert path.stat().st_mtime_ns == mtime


@pytest.mark.large
@needs_sword
def test_corpus_splits_and_vocab(corpus):
    assert isinstance(corpus, TranslationCorpus)
    assert [len(corpus.train), len(corpus.valid), len(corpus.test)] == [
        29832,
        639,
        613,
    ]
    assert corpus.references("test") == [es for _, es in corpus.test]
    assert corpus.source_vocab is corpus.target_vocab
    assert corpus.source_vocab.size == 8000
    english, spanish = corpus.train[0]
    for text in (english, spanish):
        assert corpus.source_vocab.decode(corpus.source_vocab.encode(text)) == text


@pytest.mark.large
@needs_sword
def test_sentencepiece_model_is_cached(corpus, cache, monkeypatch):
    assert len(list(cache.glob("spm-*.json"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model was not used")

    monkeypatch.setattr(translation.SentencePieceVocabulary, "train", no_training)
    again = load_translation(cache_dir=cache)
    assert again.source_vocab.model_proto == corpus.source_vocab.model_proto


@pytest.mark.large
@needs_sword
def test_max_pairs_keeps_canon_prefix(corpus, cache):
    small = load_translation(cache_dir=cache, max_pairs=400, vocab_size=500)
    assert len(small.train) + len(small.valid) + len(small.test) == 400
    assert small.train[0][0].startswith("In the beginning")
    assert small.source_vocab.size <= 500
