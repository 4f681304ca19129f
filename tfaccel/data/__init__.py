"""Datasets, vocabularies, tf.data pipelines and metrics for tfaccel tasks.

Two offline tasks: G2P on CMUdict (`load_g2p`) and KJV -> Reina-Valera 1909
translation (`load_translation`).
"""

from tfaccel.data.g2p import G2PCorpus, cmudict_words, load_g2p, split_of
from tfaccel.data.metrics import (
    bleu,
    chrf,
    edit_distance,
    phoneme_error_rate,
    word_error_rate,
)
from tfaccel.data.pipeline import encode_sources, make_dataset
from tfaccel.data.sentencepiece_vocabulary import SentencePieceVocabulary
from tfaccel.data.translation import TranslationCorpus, load_translation
from tfaccel.data.vocabulary import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary
from tfaccel.data.word_lists import WORD_LISTS, unlabelled_words

__all__ = [
    # === Vocabularies ===
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "UNK_ID",
    "SentencePieceVocabulary",
    "Vocabulary",
    # === Corpora ===
    "G2PCorpus",
    "TranslationCorpus",
    "WORD_LISTS",
    "cmudict_words",
    "load_g2p",
    "load_translation",
    "split_of",
    "unlabelled_words",
    # === Pipelines ===
    "encode_sources",
    "make_dataset",
    # === Metrics ===
    "bleu",
    "chrf",
    "edit_distance",
    "phoneme_error_rate",
    "word_error_rate",
]
