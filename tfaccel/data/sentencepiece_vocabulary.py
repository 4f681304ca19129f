"""A SentencePiece subword vocabulary with the same ids and API as Vocabulary."""

import base64
import hashlib
import io
import json

from tfaccel.data.vocabulary import BOS_ID, EOS_ID, PAD_ID, UNK_ID


class SentencePieceVocabulary:
    """Wraps a trained SentencePiece model (Kudo and Richardson, 2018).

    Ids line up with `Vocabulary`: `PAD=0, BOS=1, EOS=2, UNK=3`. `encode`
    takes a string and adds no BOS/EOS; `decode` returns a string.

    Args:
        model_proto: the serialized SentencePiece `ModelProto` (bytes), or
            the same bytes base64-encoded as a str (as `get_config` stores it).

    Example:

    >>> vocab = SentencePieceVocabulary.train(sentences, vocab_size=1000)
    >>> vocab.decode(vocab.encode("In the beginning"))
    'In the beginning'
    """

    def __init__(self, model_proto):
        import sentencepiece as spm

        if isinstance(model_proto, str):
            model_proto = base64.b64decode(model_proto)
        self.model_proto = bytes(model_proto)
        self._processor = spm.SentencePieceProcessor(model_proto=self.model_proto)
        reserved = [
            self._processor.pad_id(),
            self._processor.bos_id(),
            self._processor.eos_id(),
            self._processor.unk_id(),
        ]
        if reserved != [PAD_ID, BOS_ID, EOS_ID, UNK_ID]:
            raise ValueError(
                "The SentencePiece model must use pad_id=0, bos_id=1, eos_id=2, "
                f"unk_id=3. Received: [pad, bos, eos, unk] ids={reserved}"
            )

    @classmethod
    def train(cls, sentences, vocab_size=8000, *, input_sentence_size=200_000):
        """Trains a unigram SentencePiece model on `sentences` in memory.

        Training is single-pass over at most `input_sentence_size` sentences
        on 2 threads, with full character coverage. `vocab_size` is a soft
        limit, so a tiny corpus gives a smaller vocabulary instead of failing.

        Args:
            sentences: list of training strings.
            vocab_size: number of ids, including the 4 reserved ones.
            input_sentence_size: most sentences to sample for training.

        Returns:
            A `SentencePieceVocabulary`.
        """
        import sentencepiece as spm

        spm.set_random_generator_seed(0)
        writer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=writer,
            model_type="unigram",
            vocab_size=vocab_size,
            hard_vocab_limit=False,
            character_coverage=1.0,
            pad_id=PAD_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            unk_id=UNK_ID,
            num_threads=2,
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            minloglevel=2,
        )
        return cls(writer.getvalue())

    @staticmethod
    def fingerprint(sentences, vocab_size):
        """Returns a hex key for caching a model trained on `sentences`."""
        digest = hashlib.sha256(f"unigram-{vocab_size}\n".encode())
        for sentence in sentences:
            digest.update(sentence.encode("utf-8") + b"\n")
        return digest.hexdigest()[:16]

    @property
    def size(self):
        """Number of ids, including the 4 reserved ones."""
        return self._processor.get_piece_size()

    def encode(self, text):
        """Returns the ids of `text` (no BOS/EOS)."""
        return self._processor.encode(text, out_type=int)

    def decode(self, ids):
        """Returns the text of `ids`, stopping at the first EOS.

        PAD and BOS are skipped; out-of-range ids decode as UNK.
        """
        kept = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                kept.append(i if 0 <= i < self.size else UNK_ID)
        return self._processor.decode(kept)

    def get_config(self):
        return {"model_proto": base64.b64encode(self.model_proto).decode("ascii")}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def save(self, path):
        """Saves the model as JSON (base64 model proto) to `path`."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.get_config(), f)

    @classmethod
    def load(cls, path):
        """Loads a vocabulary saved with `save`."""
        with open(path, encoding="utf-8") as f:
            return cls.from_config(json.load(f))

    def __repr__(self):
        return f"SentencePieceVocabulary(size={self.size})"
