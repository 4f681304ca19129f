"""Shared helpers for the quantization tests: tiny models and quick training."""

import keras
import numpy as np

import tfaccel
from tfaccel.models import Seq2SeqTransformer

ALL = [".*kernel", ".*token_embedding/embeddings"]


def tiny_model(seed=0, **overrides):
    """Returns the tiny reference encoder-decoder with seeded weights, built."""
    keras.utils.set_random_seed(seed)
    model = Seq2SeqTransformer.from_preset("tiny", **overrides)
    x, _ = seq2seq_data(model, batch=2)
    model(x)
    return model


def seq2seq_data(model, batch=32, length=8, seed=0):
    """Returns random `(x, y)` token ids for `model` (no padding)."""
    rng = np.random.default_rng(seed)
    x = {
        "encoder_token_ids": rng.integers(
            3, model.encoder_vocabulary_size, (batch, length)
        ).astype("int32"),
        "decoder_token_ids": rng.integers(
            3, model.decoder_vocabulary_size, (batch, length)
        ).astype("int32"),
    }
    return x, rng.integers(3, model.decoder_vocabulary_size, (batch, length)).astype(
        "int32"
    )


def fit(model, steps=6, batch=8, optimizer=None, callbacks=None, seed=0):
    """Fits `model` for `steps` on random data with tfaccel's callbacks."""
    x, y = seq2seq_data(model, batch=steps * batch, seed=seed)
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        x,
        y,
        batch_size=batch,
        shuffle=False,
        verbose=0,
        callbacks=tfaccel.callbacks(model) if callbacks is None else callbacks,
    )
    return model


def qat_tiny(seed=0, targets=ALL, config=None, steps=6):
    """A tiny model after QAT training and strip."""
    model = tiny_model(seed)
    tfaccel.quantize_aware(model, targets=targets, config=config)
    fit(model, steps=steps)
    return tfaccel.strip(model)
