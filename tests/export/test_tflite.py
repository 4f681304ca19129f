"""TFLite conversion with generation signatures, run in LiteRT's interpreter."""

import collections

import keras
import numpy as np
import pytest
from keras import ops
from qat_checks import ALL, fit, qat_tiny, tiny_model

import tfaccel
from tfaccel.errors import UserError
from tfaccel.export import tflite
from tfaccel.quantization import _state

SOURCE, TARGET = 12, 8


def _ids(model, batch=6, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, model.encoder_vocabulary_size, (batch, 9)).astype("int32")
    ids[1, 5:] = 0  # one padded source
    return ids


def _step_logits(model, lite, ids):
    """Logits of the first two decode steps, from Keras and from LiteRT."""
    padded = np.zeros((len(ids), SOURCE), np.int32)
    padded[:, : ids.shape[1]] = ids
    cross, mask = model.encode(padded)
    cache = model.init_cache(len(ids), TARGET)
    encoded = lite._encode(encoder_token_ids=padded)
    lite_cache = np.zeros(ops.shape(cache), np.float32)
    tokens = np.ones((len(ids), 1), np.int32)
    ours, theirs = [], []
    for index in range(2):
        logits, cache = model.decode_step(tokens, index, cache, cross, mask)
        out = lite._decode(
            token_ids=tokens,
            index=np.array(index, np.int32),
            self_cache=lite_cache,
            cross_cache=encoded["cross_cache"],
            encoder_mask=encoded["encoder_mask"],
        )
        lite_cache = out["self_cache"]
        ours.append(ops.convert_to_numpy(logits))
        theirs.append(out["logits"])
        tokens = np.full((len(ids), 1), 5 + index, np.int32)
    return np.concatenate(ours), np.concatenate(theirs)


def _ops(data):
    return collections.Counter(
        (row["subgraph"], row["op"], tuple(row["inputs"][:2]))
        for row in tflite.op_report(data)
    )


def test_fp32_export_generates_what_keras_generates():
    model = tiny_model()
    data = tflite.convert(model, "fp32", SOURCE, TARGET)
    lite = tflite.LiteRTModel(data)
    ours, theirs = _step_logits(model, lite, _ids(model))
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
    ids = _ids(model)
    np.testing.assert_array_equal(
        lite.generate(ids, TARGET), model.generate(ids, TARGET)
    )


@pytest.fixture(scope="module")
def qat_model():
    return qat_tiny()


@pytest.fixture(scope="module")
def qat_tflite(qat_model):
    return tflite.convert(qat_model, "qat", SOURCE, TARGET)


def test_qat_export_has_int8_kernels_for_every_targeted_layer(qat_tflite):
    rows = tflite.op_report(qat_tflite)
    fully_connected = [r for r in rows if r["op"] == "FULLY_CONNECTED"]
    # encode: 2 encoder layers x 6 + 2 decoder layers x 2 cross key/value;
    # decode_step: 2 decoder layers x 8 + the head.
    counts = collections.Counter(r["subgraph"] for r in fully_connected)
    assert counts == {"encode": 16, "decode_step": 17}
    for row in fully_connected:
        assert row["inputs"][:2] == ["INT8", "INT8"], row
        assert row["outputs"] == ["INT8"]
        assert row["weight_scales"] > 1  # per-channel survived conversion
    matmuls = [r for r in rows if r["op"] == "BATCH_MATMUL"]
    assert len(matmuls) == 2 * 2 + 2 * 4  # scores and values, per attention
    assert all(r["inputs"] == ["INT8", "INT8"] for r in matmuls)
    # Softmax and layer norms stay float; token tables are int8 lookups.
    assert {tuple(r["inputs"]) for r in rows if r["op"] == "SOFTMAX"} == {("FLOAT32",)}
    gathers = collections.Counter(
        r["subgraph"] for r in rows if r["op"] == "GATHER" and r["inputs"][0] == "INT8"
    )
    # The token table in each; decode_step also reads its int8 cross cache.
    assert gathers["encode"] == 1 and gathers["decode_step"] >= 1


def test_qat_export_matches_the_fake_quant_keras_model(qat_model, qat_tflite):
    lite = tflite.LiteRTModel(qat_tflite)
    ours, theirs = _step_logits(qat_model, lite, _ids(qat_model))
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.995
    spread = ours.max() - ours.min()
    assert np.abs(ours - theirs).mean() < 0.02 * spread


def test_every_quantized_weight_is_stored_once_as_int8(qat_model, qat_tflite):
    # On this tiny model the graph outweighs the weights, so this checks the
    # stored weights; the whole-file ratio is measured on G2P `small`.
    ((_, state),) = _state.find_states(qat_model)
    quantized = [r.weight for r in state.layers if r.weight is not None]
    count = sum(int(np.prod(w.shape)) for w in quantized)
    stored = tflite.stored_bytes(qat_tflite)
    assert count <= stored["INT8"] <= count + 16  # + a few int8 scalars
    fp32 = tflite.stored_bytes(tflite.convert(qat_model, "fp32", SOURCE, TARGET))
    assert fp32["FLOAT32"] >= 4 * count


def test_per_tensor_weights_give_one_scale_per_kernel():
    model = qat_tiny(config=tfaccel.QATConfig(per_channel=False))
    rows = tflite.op_report(tflite.convert(model, "qat", SOURCE, TARGET))
    scales = {r["weight_scales"] for r in rows if r["op"] == "FULLY_CONNECTED"}
    assert scales == {1}


def test_prune_then_qat_int8_kernels_keep_the_zeros():
    model = tiny_model()
    targets = ["re:.*(attention|feedforward).*kernel"]
    tfaccel.prune(
        model, targets, tfaccel.ConstantSparsity(0.5, begin_step=0, frequency=1)
    )
    fit(model, steps=3)
    # As a recipe does: QAT on the still-pruned model, one strip at the end.
    tfaccel.quantize_aware(model, targets=ALL)
    fit(model, steps=3, optimizer=keras.optimizers.Adam(1e-2))
    tfaccel.strip(model)
    for variable in model.trainable_weights:
        assert variable.constraint is None, variable.path
    rows = tflite.op_report(tflite.convert(model, "qat", SOURCE, TARGET))
    pruned = [
        r for r in rows if r["op"] == "FULLY_CONNECTED" and r["weight_zeros"] >= 0.45
    ]
    # Every attention and feedforward kernel: all but the head.
    assert len(pruned) == 16 + 16
    assert all(r["inputs"][:2] == ["INT8", "INT8"] for r in pruned)
    assert all(abs(r["weight_zeros"] - 0.5) < 0.01 for r in pruned)


def test_post_training_modes():
    # Dynamic-range quantization skips weights under 1024 values: widen.
    model = tiny_model(hidden_dim=32, intermediate_dim=64)
    representative = [_ids(model, batch=4)]
    dynamic = _ops(tflite.convert(model, "dynamic", SOURCE, TARGET))
    assert dynamic[("decode_step", "FULLY_CONNECTED", ("FLOAT32", "INT8"))] == 17
    fp16 = tflite.op_report(tflite.convert(model, "fp16", SOURCE, TARGET))
    assert any(r["op"] == "DEQUANTIZE" and r["inputs"] == ["FLOAT16"] for r in fp16)
    data = tflite.convert(model, "int8", SOURCE, TARGET, representative=representative)
    full = _ops(data)
    assert full[("decode_step", "FULLY_CONNECTED", ("INT8", "INT8"))] >= 16
    # Layer normalization's statistics stay float (tflite.FLOAT_OPS).
    means = [r["inputs"][0] for r in tflite.op_report(data) if r["op"] == "MEAN"]
    assert means and set(means) == {"FLOAT32"}
    lite = tflite.LiteRTModel(data)
    assert lite.generate(_ids(model), TARGET).shape == (6, TARGET)


def test_bounded_masks_keep_the_keras_outputs():
    # int8 PTQ converts with a finite mask fill; the model's outputs must not
    # change, and the patch must be gone afterwards.
    model = tiny_model()
    ids = _ids(model)
    targets = ids[:, :5] % model.decoder_vocabulary_size
    inputs = {"encoder_token_ids": ids, "decoder_token_ids": targets}
    before = ops.convert_to_numpy(model(inputs))
    with tflite._bounded_attention_masks(model):
        during = ops.convert_to_numpy(model(inputs))
        patched = [
            layer
            for layer in model._flatten_layers()
            if "_compute_attention" in vars(layer)
        ]
    assert len(patched) == 3 * 2  # encoder self; decoder self and cross
    np.testing.assert_allclose(during, before, atol=1e-5)
    assert not any("_compute_attention" in vars(layer) for layer in patched)


def test_conversion_errors_are_clear():
    model = tiny_model()
    with pytest.raises(UserError, match="representative dataset.*empty"):
        tflite.convert(model, "int8", SOURCE, TARGET, representative=[])
    with pytest.raises(UserError, match="needs a representative dataset"):
        tflite.convert(model, "int8", SOURCE, TARGET)
    with pytest.raises(UserError, match="quantize_aware"):
        tflite.convert(model, "qat", SOURCE, TARGET)
    with pytest.raises(UserError, match="Unknown TFLite mode 'int4'"):
        tflite.convert(model, "int4", SOURCE, TARGET)
    tfaccel.quantize_aware(model)
    with pytest.raises(UserError, match="strip"):
        tflite.convert(model, "qat", SOURCE, TARGET)
    with pytest.raises(UserError, match="No TFLite file"):
        tflite.LiteRTModel("missing.tflite")
