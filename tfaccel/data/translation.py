"""English KJV -> Spanish Reina-Valera 1909 verse pairs from SWORD modules."""

import dataclasses
import functools
import json
import os
import re

from tfaccel.data import _cache
from tfaccel.data._split import hash_split
from tfaccel.data.sentencepiece_vocabulary import SentencePieceVocabulary
from tfaccel.errors import UserError

ENGLISH_MODULE = "engKJV2006eb"
SPANISH_MODULE = "spaRV1909eb"
DEFAULT_SWORD_PATH = "/usr/share/sword"
CACHE_FILE = "kjv-rv1909.tsv"
_TSV_HEADER = "ref\tenglish\tspanish"
SPLITS = ("train", "valid", "test")

# USFM character markers (e.g. "\nd LORD") that pysword's OSIS cleaner leaves.
_USFM_MARKER = re.compile(r"\\\+?[a-z]+\d*\*?")


def split_of_verse(ref):
    """Returns "train", "valid" or "test" for a verse reference.

    The split is `md5(ref) % 100`: below 96 is train, below 98 is valid, and
    the rest is test.

    Example:

    >>> split_of_verse("Genesis 1:1") in ("train", "valid", "test")
    True
    """
    return hash_split(ref, train_percent=96, valid_percent=2)


def _clean(text):
    """Removes leftover markup and the paragraph sign, collapses whitespace."""
    text = _USFM_MARKER.sub(" ", text).replace("\u00b6", " ")
    return " ".join(text.split())


def _sword_path():
    return os.environ.get("SWORD_PATH") or DEFAULT_SWORD_PATH


def _missing_modules(sword_path):
    return UserError(
        f"The KJV/RV1909 SWORD modules ({ENGLISH_MODULE}, {SPANISH_MODULE}) were "
        f"not found at {sword_path}. Install them with "
        "`sudo apt-get install sword-text-kjv sword-text-sparv`, or set "
        "SWORD_PATH to a SWORD data directory that holds them. "
        f"Received: sword_path={sword_path}"
    )


def _open_bibles(sword_path):
    """Returns the English and Spanish `pysword` bibles under `sword_path`."""
    from pysword.modules import SwordModules

    if not os.path.isdir(os.path.join(sword_path, "mods.d")):
        raise _missing_modules(sword_path)
    modules = SwordModules(sword_path)
    found = modules.parse_modules()
    if ENGLISH_MODULE not in found or SPANISH_MODULE not in found:
        raise _missing_modules(sword_path)
    bibles = []
    for key in (ENGLISH_MODULE, SPANISH_MODULE):
        bible = modules.get_bible_from_module(key)
        # Both modules store one compressed block per book; pysword inflates
        # the block again for every verse. Memoizing it cuts ~70 s to ~3 s.
        if hasattr(bible, "_decompressed_text"):
            bible._decompressed_text = functools.lru_cache(maxsize=4)(
                bible._decompressed_text
            )
        bibles.append(bible)
    return bibles


def _verse_refs(bible):
    """Yields `(book, chapter, verse)` for every verse in canon order."""
    books = bible.get_structure().get_books()
    for testament in ("ot", "nt"):
        for book in books.get(testament, []):
            for chapter, length in enumerate(book.chapter_lengths, 1):
                for verse in range(1, length + 1):
                    yield book.name, chapter, verse


def _verse(bible, book, chapter, verse):
    try:
        return _clean(bible.get(books=book, chapters=chapter, verses=verse))
    except ValueError:  # The verse is outside this module's versification.
        return ""


def extract_pairs(sword_path=None):
    """Reads every KJV-versified verse present in both modules.

    Args:
        sword_path: SWORD data directory; defaults to `$SWORD_PATH`, else
            `/usr/share/sword`.

    Returns:
        List of `(ref, english, spanish)` triples in canon order, `ref` like
        "Genesis 1:1"; verses empty on either side are dropped.

    Raises:
        UserError: if the two modules are not installed there.
    """
    sword_path = sword_path or _sword_path()
    english, spanish = _open_bibles(sword_path)
    triples = []
    for book, chapter, verse in _verse_refs(english):
        en = _verse(english, book, chapter, verse)
        es = _verse(spanish, book, chapter, verse)
        if en and es:
            triples.append((f"{book} {chapter}:{verse}", en, es))
    return triples


def _read_tsv(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if not lines or lines[0] != _TSV_HEADER:
        return None
    return [tuple(line.split("\t")) for line in lines[1:] if line]


def _write_tsv(path, triples):
    lines = [_TSV_HEADER] + ["\t".join(triple) for triple in triples]
    _cache.write_atomic(path, "\n".join(lines) + "\n")


def load_pairs(cache_dir=None, sword_path=None):
    """Returns the aligned `(ref, english, spanish)` triples, cached as TSV.

    The first call extracts the verses (a few seconds) and writes
    `kjv-rv1909.tsv` atomically to the cache directory; later calls read it.

    Args:
        cache_dir: cache directory; defaults to `$TFACCEL_CACHE_DIR`, else
            `$XDG_CACHE_HOME/tfaccel`, else `~/.cache/tfaccel`.
        sword_path: SWORD data directory (see `extract_pairs`).
    """
    path = _cache.cache_dir(cache_dir) / CACHE_FILE
    triples = _read_tsv(path) if path.exists() else None
    if triples is None:
        triples = extract_pairs(sword_path)
        _write_tsv(path, triples)
    return triples


@dataclasses.dataclass
class TranslationCorpus:
    """KJV English -> Reina-Valera 1909 Spanish verse pairs, split by verse.

    Attributes:
        train: list of `(english, spanish)` string pairs.
        valid: as `train`.
        test: as `train`.
        source_vocab: joint `SentencePieceVocabulary` trained on `train`.
        target_vocab: the same object as `source_vocab`.
    """

    train: list
    valid: list
    test: list
    source_vocab: SentencePieceVocabulary
    target_vocab: SentencePieceVocabulary

    def references(self, split):
        """Returns the Spanish reference strings of `split`, in order."""
        if split not in SPLITS:
            raise ValueError(
                f"`split` must be one of {SPLITS}. Received: split={split}"
            )
        return [spanish for _, spanish in getattr(self, split)]


def _sentencepiece(train, vocab_size, cache_dir):
    """Returns the joint SentencePiece model for `train`, cached by content."""
    sentences = [text for pair in train for text in pair]
    key = SentencePieceVocabulary.fingerprint(sentences, vocab_size)
    path = _cache.cache_dir(cache_dir) / f"spm-{key}.json"
    if path.exists():
        return SentencePieceVocabulary.load(path)
    vocab = SentencePieceVocabulary.train(sentences, vocab_size)
    _cache.write_atomic(path, json.dumps(vocab.get_config()))
    return vocab


def load_translation(
    cache_dir=None, max_pairs=None, *, vocab_size=8000, sword_path=None
):
    """Loads the KJV -> RV1909 translation corpus with a SentencePiece vocab.

    Verses are aligned by KJV versification (both modules use it) and split
    by `md5(ref) % 100`: 96% train, 2% valid, 2% test. The joint unigram
    SentencePiece model is trained on the train split of both languages and
    cached by a hash of that data and `vocab_size`.

    Args:
        cache_dir: where the verse TSV and the SentencePiece model are
            cached; see `load_pairs`.
        max_pairs: if set, keep only the first `max_pairs` verses in canon
            order (for tests).
        vocab_size: SentencePiece vocabulary size, including the 4 reserved
            ids (a soft limit for tiny corpora).
        sword_path: SWORD data directory; defaults to `$SWORD_PATH`, else
            `/usr/share/sword`.

    Returns:
        A `TranslationCorpus`.

    Raises:
        UserError: if there is no cache and the SWORD modules are missing.

    Example:

    >>> corpus = load_translation()
    >>> english, spanish = corpus.train[0]
    """
    splits = {name: [] for name in SPLITS}
    for ref, english, spanish in load_pairs(cache_dir, sword_path)[:max_pairs]:
        splits[split_of_verse(ref)].append((english, spanish))
    vocab = _sentencepiece(splits["train"], vocab_size, cache_dir)
    return TranslationCorpus(**splits, source_vocab=vocab, target_vocab=vocab)
