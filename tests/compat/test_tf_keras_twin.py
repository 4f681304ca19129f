"""The tf_keras twin, the tfmot prune + QAT peer, and its TFLite file in LiteRT."""

import importlib.util
import os

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("tf_keras", reason="needs tf_keras: pip install 'tfaccel[tfmot]'")

from tfaccel import compat  # noqa: E402
from tfaccel.models import Seq2SeqTransformer  # noqa: E402

SOURCE, TARGET = 12, 10
# One encoder and one decoder layer keep tfmot's many model clones quick.
SHORT = dict(
    max_encoder_length=SOURCE,
    max_decoder_length=TARGET,
    num_encoder_layers=1,
    num_decoder_layers=1,
)
PRUNED = {
    "encoder_layer_0_self_attention_layer",
    "encoder_layer_0_feedforward_intermediate_dense",
    "encoder_layer_0_feedforward_output_dense",
    "decoder_layer_0_self_attention",
    "decoder_layer_0_cross_attention",
    "decoder_layer_0_feedforward_intermediate_dense",
    "decoder_layer_0_feedforward_output_dense",
}


def _batch(model, rows=4, seed=0):
    """Source and teacher-forcing ids, with padded rows on both sides."""
    rng = np.random.default_rng(seed)
    source = rng.integers(3, model.encoder_vocabulary_size, (rows, SOURCE - 2))
    source[::3, 6:] = 0
    target = rng.integers(3, model.decoder_vocabulary_size, (rows, TARGET - 1))
    target[:, 0] = 1  # BOS
    target[1, 5:] = 0
    return {
        "encoder_token_ids": source.astype("int32"),
        "decoder_token_ids": target.astype("int32"),
    }


def _dataset(model, rows=32, batch=16):
    inputs = _batch(model, rows, seed=1)
    labels = np.roll(inputs["decoder_token_ids"], -1, axis=1)
    weights = (labels != 0).astype("float32")
    return tf.data.Dataset.from_tensor_slices((inputs, labels, weights)).batch(batch)


@pytest.mark.large
@pytest.mark.parametrize(
    "overrides",
    [
        dict(max_encoder_length=SOURCE, max_decoder_length=TARGET),  # 2 + 2 layers
        dict(SHORT, head_dim=4),  # heads narrower than hidden_dim // num_heads
    ],
)
def test_twin_logits_match_keras3(overrides):
    model = Seq2SeqTransformer.from_preset("tiny", **overrides)
    # Non-zero biases and norms, so a weight copied to the wrong place shows.
    for variable in model.weights:
        rng = np.random.default_rng(len(variable.path))
        variable.assign(rng.normal(0, 0.3, variable.shape).astype("float32"))
    twin = compat.twin_from_model(model)
    inputs = _batch(model)
    expected = np.asarray(model(inputs))
    np.testing.assert_allclose(twin(inputs).numpy(), expected, atol=1e-5)
    assert np.abs(expected).max() > 1.0  # the comparison is not of near-zeros


def test_copy_weights_rejects_another_architecture():
    model = Seq2SeqTransformer.from_preset("tiny", **SHORT)
    twin = compat.build_twin({**model.get_config(), "intermediate_dim": 8})
    with pytest.raises(ValueError, match="feedforward_intermediate_dense"):
        compat.copy_weights(model, twin)


@pytest.fixture(scope="module")
def peer():
    """One run of the tfmot peer on a tiny twin: prune 1 epoch, QAT 1."""
    if importlib.util.find_spec("tensorflow_model_optimization") is None:
        pytest.skip("needs tensorflow-model-optimization: pip install 'tfaccel[tfmot]'")
    model = Seq2SeqTransformer.from_preset("tiny", **SHORT)
    twin = compat.twin_from_model(model)
    twin_weights = [w.copy() for w in twin.get_weights()]
    result = compat.tfmot_prune_qat(twin, _dataset(model), prune_epochs=1, qat_epochs=1)
    return model, twin, twin_weights, result


@pytest.mark.large
def test_pruning_leaves_half_zeros_and_the_twin_untouched(peer):
    model, twin, twin_weights, result = peer
    assert set(result.record.pruned) == PRUNED
    for name, sparsity in result.record.pruned.items():
        assert sparsity == pytest.approx(0.5, abs=0.01), name
    dense = result.pruned.get_layer("decoder_layer_0_feedforward_output_dense")
    assert np.mean(dense.kernel.numpy() == 0) == pytest.approx(0.5, abs=0.01)
    attention = result.pruned.get_layer("decoder_layer_0_cross_attention")
    value = attention._value_dense.kernel.numpy()  # (hidden, heads, head_dim)
    assert np.mean(value == 0) == pytest.approx(0.5, abs=0.05)
    # Embeddings and the output layer are outside the targets.
    assert np.mean(result.pruned.get_layer("lm_head").kernel.numpy() == 0) < 0.01
    for before, after in zip(twin_weights, twin.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.large
def test_qat_record_names_what_tfmot_refused(peer):
    record = peer[3].record
    refused = {refusal.layer_class: refusal for refusal in record.unsupported}
    assert {"MultiHeadAttention", "LayerNormalization", "Embedding"} <= set(refused)
    attention = refused["MultiHeadAttention"]
    assert "is not supported" in attention.error
    assert set(attention.layers) == {n for n in PRUNED if "attention" in n}
    assert "FakeQuantWithMinMaxVars" in refused["Embedding"].error
    # quantize_model on the whole twin fails inside an attention projection.
    assert "EinsumDense" in record.quantize_model_error
    assert record.quantized["lm_head"] == "weights+outputs"
    assert record.quantized["encoder_layer_0_feedforward_output_dense"] == (
        "weights+outputs"
    )
    assert "decoder_layer_0_cross_attention" in record.float_layers
    assert set(record.frozen) == set(attention.layers)
    # Prune-preserving QAT and the frozen attention layers keep every zero.
    for name, sparsity in record.final_sparsity.items():
        assert sparsity == pytest.approx(record.pruned[name], abs=1e-6), name


@pytest.mark.large
def test_qat_tflite_runs_in_litert_close_to_keras(peer):
    model, _, _, result = peer
    inputs = _batch(model)
    data = compat.to_tflite_int8(
        result.model, source_length=SOURCE, target_length=TARGET, batch_size=4
    )
    lite = compat.LiteRTTwin(data)
    expected = result.model(inputs, training=False).numpy()
    width = expected.shape[1]
    got = lite.logits(inputs["encoder_token_ids"], inputs["decoder_token_ids"])
    got = got[:, :width]
    # int8 rounding flips of single activation steps: small on average.
    assert np.mean(np.abs(got - expected)) < 0.1
    assert np.mean(got.argmax(-1) == expected.argmax(-1)) >= 0.75
    summary = compat.op_summary(data)
    assert not summary["full_int8"]
    # Only the feedforward output kernels (int8 in, from QAT) run in int8.
    assert (
        summary["float_ops"]["FULLY_CONNECTED"] == summary["ops"]["FULLY_CONNECTED"] - 2
    )


@pytest.mark.large
def test_litert_greedy_generation_matches_keras3(peer):
    model, twin, _, _ = peer
    data = compat.to_tflite_int8(
        twin, source_length=SOURCE, target_length=TARGET - 1, optimize=False
    )
    lite = compat.LiteRTTwin(data)
    assert compat.op_summary(data)["float_ops"]  # a float baseline file
    sources = _batch(model, rows=3)["encoder_token_ids"]
    expected = model.generate(sources, max_length=TARGET - 1, use_cache=False)
    np.testing.assert_array_equal(lite.generate(sources), expected)
    # A file of batch 2: three rows make a full group and a short one.
    data = compat.to_tflite_int8(
        twin,
        source_length=SOURCE,
        target_length=TARGET - 1,
        batch_size=2,
        optimize=False,
    )
    lite = compat.LiteRTTwin(data)
    np.testing.assert_array_equal(lite.generate(sources), expected)


def test_tfmot_import_leaves_legacy_keras_unset():
    if importlib.util.find_spec("tensorflow_model_optimization") is None:
        pytest.skip("needs tensorflow-model-optimization: pip install 'tfaccel[tfmot]'")
    from tfaccel.compat import _deps

    _deps.tfmot()
    assert "TF_USE_LEGACY_KERAS" not in os.environ
    assert tf.keras.__name__.startswith("keras")  # Keras 3, not tf_keras
