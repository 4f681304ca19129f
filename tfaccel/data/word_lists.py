"""Unlabelled English words for sequence-level distillation on G2P.

Kim & Rush (2016) find sequence-level KD pays most where the student can
learn from the teacher's outputs on inputs that have no reference. For G2P
those are English words that CMUdict lacks: Debian's `wamerican` and
`wbritish` word lists (SCOWL, about 104k entries each) hold about 50k of
them once lower-cased. Every CMUdict word is left out, whatever its split,
so no test word can reach the student through the teacher.
"""

import pathlib

from tfaccel.errors import UserError

# Debian packages wamerican and wbritish.
WORD_LISTS = (
    "/usr/share/dict/american-english",
    "/usr/share/dict/british-english",
)


def unlabelled_words(exclude, alphabet, max_length, paths=WORD_LISTS, limit=None):
    """Returns the sorted words of `paths` that are usable and not in `exclude`.

    Args:
        exclude: words to leave out (all of CMUdict).
        alphabet: characters a word may use (the source vocabulary's).
        max_length: longest word kept, in characters.
        paths: word-list files, one word per line.
        limit: keep every k-th word so that at most about `limit` remain
            (smoke runs); None keeps all.

    Returns:
        A sorted list of lower-case words, each in no split of the corpus.

    Raises:
        UserError: a word list is missing (it names the Debian package).
    """
    missing = [path for path in paths if not pathlib.Path(path).is_file()]
    if missing:
        raise UserError(
            "Distilling on unlabelled words reads Debian's word lists; install "
            "them with `sudo apt-get install wamerican wbritish` (tools/setup.sh "
            f"does as root). Received: missing={missing}"
        )
    alphabet = set(alphabet)
    words = set()
    for path in paths:
        for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines():
            word = line.strip().lower()
            if 0 < len(word) <= max_length and set(word) <= alphabet:
                words.add(word)
    words = sorted(words - set(exclude))
    if limit is not None and len(words) > limit:
        words = words[:: -(-len(words) // limit)]
    return words
