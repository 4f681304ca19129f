"""The `quantization_aware` recipe modifier and mixed-precision policies."""

import keras
import numpy as np
import pydantic
import pytest
from qat_checks import fit, qat_tiny, seq2seq_data, tiny_model

import tfaccel
from tfaccel.errors import UserError
from tfaccel.quantization import _state
from tfaccel.quantization.precision import global_policy, with_policy
from tfaccel.quantization.recipe import apply_modifier
from tfaccel.recipe.context import StageContext
from tfaccel.recipe.modifiers import QuantizationAware


def test_modifier_defaults_and_apply():
    modifier = QuantizationAware.model_validate(
        {"type": "quantization_aware", "per_channel": False}
    )
    assert modifier.targets == [".*kernel"] and modifier.weight_bits == 8
    model = apply_modifier(tiny_model(), modifier, StageContext(10))
    ((_, state),) = _state.find_states(model)
    assert state.config.per_channel is False
    assert {r.kind for r in state.layers} == {"dense", "einsum_dense", "attention"}


@pytest.mark.parametrize(
    "bad, location",
    [
        ({"activation_bits": 4}, "activation_bits"),
        ({"weight_bits": 9}, "weight_bits"),
        ({"weight_bits": "8"}, "weight_bits"),
        ({"range_decay": 1.5}, "range_decay"),
        ({"targets": []}, "targets"),
        ({"targets": ["re:(("]}, "targets"),
        ({"bits": 8}, "bits"),
    ],
)
def test_modifier_rejects_bad_values(bad, location):
    with pytest.raises(pydantic.ValidationError) as info:
        QuantizationAware.model_validate({"type": "quantization_aware", **bad})
    assert info.value.errors()[0]["loc"][0] == location


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_with_policy_trains_in_mixed_precision_and_returns_to_float32(policy):
    model = tiny_model()
    mixed = with_policy(model, policy)
    assert mixed.dtype_policy.name == policy
    assert keras.config.dtype_policy().name == "float32"  # restored
    for ours, theirs in zip(mixed.weights, model.weights, strict=True):
        assert ours.dtype == "float32"
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    fit(mixed, steps=3)
    wrapped = isinstance(mixed.optimizer, keras.optimizers.LossScaleOptimizer)
    assert wrapped == (policy == "mixed_float16")  # loss scaling for float16 only
    x, _ = seq2seq_data(model, batch=2)
    assert mixed(x).dtype == ("float16" if policy == "mixed_float16" else "bfloat16")
    back = with_policy(mixed, "float32")
    assert back.dtype_policy.name == "float32" and back(x).dtype == "float32"


def test_with_policy_keeps_a_stripped_qat_models_ranges():
    model = qat_tiny()
    back = with_policy(with_policy(model, "mixed_bfloat16"), "float32")
    ((_, state),) = _state.find_states(back)
    ((_, original),) = _state.find_states(model)
    assert [q.frozen for _, q in state.ranges()] == [
        q.frozen for _, q in original.ranges()
    ]


def test_unknown_policy_and_unstripped_qat_are_clear_errors():
    with pytest.raises(UserError, match="Unknown precision 'float8'"):
        with global_policy("float8"):
            pass
    model = tiny_model()
    tfaccel.quantize_aware(model)
    with pytest.raises(UserError, match="Strip QAT"):
        with_policy(model, "mixed_float16")
