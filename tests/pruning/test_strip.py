"""Tests for tfaccel.strip: plain model, real zeros, .keras round trip."""

import json
import warnings
import zipfile

import keras
import numpy as np
import pytest
from pruning_checks import (
    assert_exact_sparsity,
    compile_for_test,
    fit_mlp,
    matching,
    seq2seq_data,
    small_mlp,
    tiny_model,
)

import tfaccel
from tfaccel.errors import UserError
from tfaccel.models import Seq2SeqTransformer
from tfaccel.pruning import _state

TARGETS = [".*feedforward.*kernel", ".*attention_output/kernel"]


def test_strip_save_and_reload_with_safe_mode(tmp_path):
    model = tiny_model()
    weights = len(model.weights)
    tfaccel.prune(model, TARGETS, tfaccel.ConstantSparsity(0.5, frequency=1))
    x, y = seq2seq_data(model, batch=8)
    compile_for_test(model)
    model.fit(x, y, batch_size=4, verbose=0, callbacks=tfaccel.callbacks(model))
    assert tfaccel.strip(model) is model
    assert type(model) is Seq2SeqTransformer and len(model.weights) == weights
    assert not hasattr(model, _state.ATTRIBUTE)
    assert all(v.constraint is None for v in model.weights)
    model.save(tmp_path / "pruned.keras")
    with zipfile.ZipFile(tmp_path / "pruned.keras") as archive:
        config = archive.read("config.json").decode()
    assert "pruning" not in config.lower() and "Sparsity" not in config
    json.loads(config)

    restored = keras.saving.load_model(tmp_path / "pruned.keras", safe_mode=True)
    assert type(restored) is Seq2SeqTransformer
    assert len(restored.weights) == weights
    np.testing.assert_allclose(restored(x), model(x), rtol=1e-5, atol=1e-6)
    assert_exact_sparsity(matching(restored, TARGETS), 0.5)
    for old, new in zip(model.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(old), keras.ops.convert_to_numpy(new)
        )


def test_original_constraints_compose_and_come_back():
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(
                32, kernel_constraint=keras.constraints.NonNeg(), name="hidden"
            ),
            keras.layers.Dense(8, name="out"),
        ],
        name="mlp",
    )
    (kernel,) = matching(model, ["mlp/hidden/kernel"])
    original = kernel.constraint
    tfaccel.prune(model, ["mlp/hidden/kernel"], tfaccel.ConstantSparsity(0.5))
    assert isinstance(kernel.constraint, _state.MaskConstraint)
    assert kernel.constraint.original is original
    fit_mlp(model, tfaccel.callbacks(model), steps=3)
    values = keras.ops.convert_to_numpy(kernel)
    assert (values >= 0).all() and int(np.sum(values == 0)) >= 256
    tfaccel.strip(model)
    assert kernel.constraint is original


def test_strip_leaves_an_unpruned_model_alone():
    model = tiny_model()
    before = [keras.ops.convert_to_numpy(v) for v in model.weights]
    assert tfaccel.strip(model) is model
    for variable, old in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), old)


def test_strip_refuses_a_model_trained_with_a_train_step_traced_before_pruning():
    # fit reuses the train function it traced before `prune` (no compile in
    # between), so neither check in the traced step runs: strip notices.
    model = small_mlp()
    x, y = np.ones((8, 16), "float32"), np.ones((8, 8), "float32")
    model.compile("adam", "mse")
    model.fit(x, y, batch_size=4, verbose=0)
    tfaccel.prune(model, [".*kernel"], tfaccel.ConstantSparsity(0.5, frequency=1))
    model.fit(x, y, batch_size=4, verbose=0)
    with pytest.raises(UserError, match="trained for 4 steps but never pruned"):
        tfaccel.strip(model)


def test_strip_warns_when_training_stopped_short_of_the_final_sparsity():
    model = small_mlp()
    schedule = tfaccel.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=40, frequency=2)
    tfaccel.prune(model, [".*kernel"], schedule)
    fit_mlp(model, tfaccel.callbacks(model), steps=8)
    with pytest.warns(UserWarning, match="short of its pruning schedule's final 50.0%"):
        tfaccel.strip(model)
    full = small_mlp()
    tfaccel.prune(full, [".*kernel"], tfaccel.ConstantSparsity(0.5, frequency=1))
    fit_mlp(full, tfaccel.callbacks(full), steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        tfaccel.strip(full)
