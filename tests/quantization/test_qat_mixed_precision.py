"""QAT trains under mixed_float16 as it does in float32."""

import keras
import numpy as np
import pytest
from qat_checks import seq2seq_data, tiny_model

import tfaccel
from tfaccel.quantization._attention import masked_penalty
from tfaccel.quantization.precision import with_policy


def _qat_fit(policy, x, y):
    model = with_policy(tiny_model(), policy)
    tfaccel.quantize_aware(model)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(
        x, y, batch_size=8, shuffle=False, verbose=0, callbacks=tfaccel.callbacks(model)
    )
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    return history.history["loss"], logits


def test_qat_under_mixed_float16_has_a_finite_loss_and_float32s_outputs():
    # Padding makes the attention mask matter: in float16 a -1e9 penalty
    # overflowed to -inf, and the mask's 0 * -inf gave NaN from step one.
    x, y = seq2seq_data(tiny_model(), batch=16)
    x["encoder_token_ids"][:, 5:] = 0
    x["decoder_token_ids"][:, 6:] = 0
    half_loss, half = _qat_fit("mixed_float16", x, y)
    full_loss, full = _qat_fit("float32", x, y)
    assert half.dtype == "float16"
    assert np.all(np.isfinite(half_loss)) and np.all(np.isfinite(half))
    # The same weights and data: the loss follows float32's. (Logits differ
    # more: float16 rounding moves values across int8 grid steps.)
    np.testing.assert_allclose(half_loss, full_loss, rtol=0.02)
    assert full.shape == half.shape


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_the_mask_penalty_is_finite_and_zeroes_softmax_in_each_dtype(dtype):
    penalty = keras.ops.cast(masked_penalty(dtype), dtype)
    assert np.isfinite(keras.ops.convert_to_numpy(penalty).astype("float32"))
    scores = keras.ops.cast([[10.0, -10.0, 10.0 + penalty]], dtype)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(scores))
    assert probabilities[0, 2] == 0
