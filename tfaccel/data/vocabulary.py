"""A token vocabulary with reserved ids for padding, BOS, EOS and unknown."""

import json

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
UNK_ID = 3
RESERVED_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")


class Vocabulary:
    """Maps tokens to integer ids, with ids 0-3 reserved.

    Ids are `PAD=0, BOS=1, EOS=2, UNK=3`; real tokens get ids from 4 in the
    order given. A token is any hashable item, typically a character (G2P
    sources) or a phoneme string (G2P targets).

    Args:
        tokens: list of unique real tokens, not including the reserved ones.

    Example:

    >>> vocab = Vocabulary(["a", "b"])
    >>> vocab.encode("abz")
    [4, 5, 3]
    >>> vocab.decode([1, 4, 5, 2, 4])
    ['a', 'b']
    """

    def __init__(self, tokens):
        self.tokens = list(tokens)
        reserved = set(RESERVED_TOKENS).intersection(self.tokens)
        if reserved:
            raise ValueError(
                "`tokens` must not contain the reserved tokens "
                f"{RESERVED_TOKENS}. Received: tokens containing {sorted(reserved)}"
            )
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError(
                f"`tokens` must be unique. Received: {len(self.tokens)} tokens, "
                f"{len(set(self.tokens))} unique"
            )
        self._id_of = {t: i for i, t in enumerate(self.tokens, len(RESERVED_TOKENS))}
        self._token_of = list(RESERVED_TOKENS) + self.tokens

    @classmethod
    def from_corpus(cls, sequences):
        """Builds a vocabulary from the sorted unique tokens of `sequences`.

        Args:
            sequences: iterable of token sequences (a str counts as a sequence
                of characters).

        Returns:
            A `Vocabulary`; the same corpus always gives the same ids.
        """
        return cls(sorted({token for seq in sequences for token in seq}))

    @property
    def all_tokens(self):
        """Every token by id: the reserved ones, then the real ones."""
        return list(self._token_of)

    @property
    def size(self):
        """Number of ids, including the 4 reserved ones."""
        return len(self._token_of)

    def encode(self, seq):
        """Returns the ids of the tokens in `seq` (no BOS/EOS; unknown -> UNK)."""
        return [self._id_of.get(token, UNK_ID) for token in seq]

    def decode(self, ids):
        """Returns the tokens of `ids`, stopping at the first EOS.

        PAD and BOS are skipped; UNK and out-of-range ids become "<unk>".
        """
        tokens = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            tokens.append(self._token_of[i] if 0 <= i < self.size else "<unk>")
        return tokens

    def get_config(self):
        return {"tokens": list(self.tokens)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def save(self, path):
        """Saves the vocabulary as JSON to `path`."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.get_config(), f, ensure_ascii=False)

    @classmethod
    def load(cls, path):
        """Loads a vocabulary saved with `save`."""
        with open(path, encoding="utf-8") as f:
            return cls.from_config(json.load(f))

    def __eq__(self, other):
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __repr__(self):
        return f"Vocabulary(size={self.size})"
