"""A stripped QAT model saves, reloads with its ranges; the callback logs them."""

import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from qat_checks import ALL, fit, qat_tiny, seq2seq_data, tiny_model

import tfaccel
from tfaccel.errors import UserError
from tfaccel.models import load_model, save_model
from tfaccel.quantization import QuantizationRanges, _state


def test_save_and_load_keep_weights_ranges_and_outputs(tmp_path):
    model = qat_tiny()
    path = tmp_path / "qat.keras"
    save_model(model, path)
    # No side channel: the ranges are in the model's config.
    assert not [n for n in zipfile.ZipFile(path).namelist() if "tfaccel" in n]
    loaded = load_model(path)
    ((_, state),) = _state.find_states(loaded)
    ((_, original),) = _state.find_states(model)
    assert state.stripped
    assert [q.frozen for _, q in state.ranges()] == [
        q.frozen for _, q in original.ranges()
    ]
    x, _ = seq2seq_data(model, batch=4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)),
        keras.ops.convert_to_numpy(model(x)),
        atol=1e-5,
    )
    # Keras's own loader reads the same file the same way.
    plain = keras.saving.load_model(path, safe_mode=True)
    ((_, frozen),) = _state.find_states(plain)
    assert frozen.stripped
    for ours, theirs in zip(plain.weights, model.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_an_unstripped_qat_model_saves_and_reloads_still_training(tmp_path):
    model = tiny_model()
    tfaccel.quantize_aware(model)
    fit(model, steps=2, callbacks=tfaccel.callbacks(model))
    save_model(model, tmp_path / "qat.keras")
    loaded = load_model(tmp_path / "qat.keras")
    ((_, state),) = _state.find_states(loaded)
    assert not state.stripped
    ranges = [(n, q.values()) for n, q in state.ranges()]
    ((_, original),) = _state.find_states(model)
    assert ranges == [(n, q.values()) for n, q in original.ranges()]
    assert any(low != -6.0 for _, (low, _) in ranges)  # trained, not initial


def test_callback_writes_every_range_to_tensorboard(tmp_path):
    model = tiny_model()
    tfaccel.quantize_aware(model, targets=ALL)
    callbacks = tfaccel.callbacks(model, log_dir=tmp_path)
    assert [type(c) for c in callbacks] == [QuantizationRanges]
    fit(model, steps=2, callbacks=callbacks)
    tags = set()
    for event_file in tmp_path.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(value.tag for value in event.summary.value)
    assert "quantization/lm_head/output/min" in tags
    assert "quantization/encoder_layer_0/self_attention_layer/scores/max" in tags
    ((_, state),) = _state.find_states(model)
    assert len(tags) == 2 * len(list(state.ranges()))


def test_callback_without_qat_names_what_to_call():
    model = tiny_model()
    with pytest.raises(UserError, match="quantize_aware"):
        fit(model, steps=1, callbacks=[QuantizationRanges()])
