"""`tfaccel.quantize_aware`: what it reaches, what it refuses, what strip leaves."""

import keras
import numpy as np
import pytest
from keras import ops
from qat_checks import ALL, fit, qat_tiny, seq2seq_data, tiny_model

import tfaccel
from tfaccel.errors import UserError
from tfaccel.quantization import QATConfig, _state


def _records(model):
    ((_, state),) = _state.find_states(model)
    return state.layers


def test_reaches_every_projection_feedforward_head_and_embedding():
    model = tiny_model()
    tfaccel.quantize_aware(model, targets=ALL)
    kinds = {}
    for record in _records(model):
        kinds.setdefault(record.kind, []).append(record.path)
    # tiny: 2 encoder + 2 decoder layers. Projections: 4 per attention,
    # encoder 1 attention, decoder 2; feedforward 2 per layer; one head.
    assert len(kinds["einsum_dense"]) == 2 * 4 + 2 * 8
    assert len(kinds["dense"]) == 4 * 2 + 1
    assert len(kinds["attention"]) == 2 + 2 * 2
    assert sorted(kinds["embedding"]) == [
        "decoder_embedding/token_embedding",
        "encoder_embedding/token_embedding",
    ]
    assert "decoder_layer_1/cross_attention/query" in kinds["einsum_dense"]
    assert "encoder_layer_0/feedforward_output_dense" in kinds["dense"]


def test_forward_pass_is_quantized_and_close_to_float():
    model = tiny_model()
    x, _ = seq2seq_data(model, batch=4)
    before = ops.convert_to_numpy(model(x))
    tfaccel.quantize_aware(model, targets=ALL)
    fit(model, steps=2, optimizer=keras.optimizers.SGD(0.0))  # ranges only
    after = ops.convert_to_numpy(model(x))
    assert not np.array_equal(before, after)
    assert np.corrcoef(before.ravel(), after.ravel())[0, 1] > 0.99


def test_strip_bakes_kernels_onto_a_per_channel_int8_grid():
    model = qat_tiny()
    for record in _records(model):
        if record.kind not in ("dense", "einsum_dense"):
            continue
        kernel = ops.convert_to_numpy(record.weight)
        axes = record.input_axes
        outputs = [i for i in range(kernel.ndim) if i not in axes]
        flat = np.transpose(kernel, list(axes) + outputs).reshape(
            int(np.prod([kernel.shape[i] for i in axes])), -1
        )
        scale = np.abs(flat).max(axis=0) / 127
        levels = flat / scale
        np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
        assert np.abs(levels).max() <= 127 + 1e-3


def test_strip_freezes_ranges_and_leaves_no_training_state():
    model = qat_tiny()
    ((_, state),) = _state.find_states(model)
    assert state.stripped
    for _, quantizer in state.ranges():
        assert quantizer.frozen is not None
        low, high = quantizer.frozen
        assert low <= 0 <= high and high > low
    assert tfaccel.callbacks(model) == []
    # Training the stripped model changes no range.
    frozen = [q.frozen for _, q in state.ranges()]
    fit(model, steps=2)
    assert [q.frozen for _, q in state.ranges()] == frozen


def test_prune_then_qat_keeps_zeros_through_training_and_strip():
    model = tiny_model()
    targets = ["re:.*(attention|feedforward).*kernel"]
    schedule = tfaccel.ConstantSparsity(0.5, begin_step=0, frequency=1)
    tfaccel.prune(model, targets, schedule)
    fit(model, steps=3)
    tfaccel.strip(model)
    pruned = {
        v.path: ops.convert_to_numpy(v) == 0
        for v in model.trainable_weights
        if "kernel" in v.path and ("attention" in v.path or "feedforward" in v.path)
    }
    tfaccel.quantize_aware(model, targets=ALL)
    fit(model, steps=4, optimizer=keras.optimizers.Adam(1e-2))
    tfaccel.strip(model)
    for variable in model.trainable_weights:
        if variable.path in pruned:
            weights = ops.convert_to_numpy(variable)
            assert np.all(weights[pruned[variable.path]] == 0), variable.path
            assert np.mean(weights == 0) == pytest.approx(0.5, abs=0.01)


def test_without_preserve_sparsity_zeros_can_regrow():
    model = tiny_model()
    kernel = model.get_layer("encoder_layer_0")._feedforward_output_dense._kernel
    kernel.assign(np.zeros(kernel.shape, "float32"))
    config = QATConfig(preserve_sparsity=False)
    tfaccel.quantize_aware(
        model,
        targets=[".*encoder_layer_0/feedforward_output_dense/kernel"],
        config=config,
    )
    fit(model, steps=3, optimizer=keras.optimizers.Adam(1e-2))
    assert np.any(ops.convert_to_numpy(kernel) != 0)


def test_ranges_follow_a_moving_average():
    model = tiny_model()
    config = QATConfig(range_decay=0.5)
    tfaccel.quantize_aware(model, targets=[".*lm_head/kernel"], config=config)
    ((record,),) = [[r for r in _records(model)]]
    quantizer = record.ranges["output"]
    fit(model, steps=1, optimizer=keras.optimizers.SGD(0.0))
    first = quantizer.values()
    fit(model, steps=1, optimizer=keras.optimizers.SGD(0.0), seed=1)
    second = quantizer.values()
    assert first != second
    assert first[0] < 0 < first[1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weight_bits": 9}, "weight_bits"),
        ({"weight_bits": 1}, "weight_bits"),
        ({"weight_bits": 8.0}, "weight_bits"),
        ({"activation_bits": 16}, "activation_bits"),
        ({"activation_bits": True}, "activation_bits"),
        ({"range_decay": 1.0}, "range_decay"),
    ],
)
def test_unsupported_bit_widths_and_settings_are_clear_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        QATConfig(**kwargs)


def test_unsupported_layer_is_named_with_what_to_do():
    model = tiny_model()
    with pytest.raises(UserError) as info:
        tfaccel.quantize_aware(model, targets=[".*encoder_layer_0/.*gamma"])
    message = str(info.value)
    assert "encoder_layer_0/self_attention_layer_norm/gamma" in message
    assert "LayerNormalization" in message
    assert "targets" in message
    assert _state.find_states(model) == []  # nothing half-applied


def test_position_embeddings_are_refused_by_path():
    model = tiny_model()
    with pytest.raises(UserError, match="position_embedding.*PositionEmbedding"):
        tfaccel.quantize_aware(model, targets=[".*position_embedding.*"])


def test_regex_matching_nothing_and_twice_applied_are_errors():
    model = tiny_model()
    with pytest.raises(UserError, match="matches no trainable variable"):
        tfaccel.quantize_aware(model, targets=[".*no_such_layer.*"])
    tfaccel.quantize_aware(model)
    with pytest.raises(UserError, match="already quantization-aware"):
        tfaccel.quantize_aware(model)


def test_summary_lists_layers_bits_and_ranges():
    model = qat_tiny()
    printed = []
    rows = tfaccel.quantization_summary(model, print_fn=printed.append)
    assert len(rows) == len(_records(model))
    dense = next(r for r in rows if r["path"] == "lm_head")
    assert dense["weight_bits"] == 8 and dense["per_channel"]
    assert set(dense["ranges"]) == {"input", "output"}
    assert "Quantization summary" in printed[0] and "lm_head" in printed[0]
    with pytest.raises(UserError, match="quantize_aware"):
        tfaccel.quantization_summary(tiny_model())
