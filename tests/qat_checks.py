"""Helpers for the QAT tests (and the export tests that train with QAT).

The tiny models and data are `technique_checks`'s, with ids from 3 up.
"""

import keras
import technique_checks as shared

import tfaccel

ALL = [".*kernel", ".*token_embedding/embeddings"]


def tiny_model(seed=0, **overrides):
    """Returns the tiny reference encoder-decoder with seeded weights, built."""
    return shared.tiny_model(seed, build=True, **overrides)


def seq2seq_data(model, batch=32, length=8, seed=0):
    """Returns random `(x, y)` token ids for `model` (no padding, BOS or EOS)."""
    return shared.seq2seq_data(model, batch, length, seed, low=3)


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
