"""QAT on keras-hub BART and T5 backbones (small configs): int8 TFLite kernels."""

import collections

import keras
import keras_hub
import numpy as np
import pytest

import tfaccel
from tfaccel.export import tflite

VOCABULARY = 50


def _data(backbone, batch=16, length=8):
    rng = np.random.default_rng(0)
    x = {
        name: rng.integers(1, VOCABULARY, (batch, length)).astype("int32")
        for name in backbone.input
    }
    x.update({name: np.ones_like(x[name]) for name in x if name.endswith("mask")})
    return x


def _qat_through_head(backbone, targets):
    inputs = {
        name: keras.Input((8,), dtype="int32", name=name) for name in backbone.input
    }
    hidden = backbone(inputs)["decoder_sequence_output"]
    model = keras.Model(inputs, keras.layers.Dense(VOCABULARY, name="head")(hidden))
    tfaccel.quantize_aware(model, targets=targets)
    x = _data(backbone)
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        x,
        x["decoder_token_ids"],
        batch_size=4,
        verbose=0,
        callbacks=tfaccel.callbacks(model),
    )
    tfaccel.strip(model)
    rows = tflite.op_report(tflite.convert_model(model, "qat"))
    return model, collections.Counter(
        (r["op"], tuple(r["inputs"][:2]), tuple(r["outputs"])) for r in rows
    )


@pytest.mark.large
def test_bart_backbone_converts_to_int8_kernels():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BartBackbone(
        vocabulary_size=VOCABULARY,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        dropout=0.0,
        max_sequence_length=16,
    )
    model, ops = _qat_through_head(
        backbone, [r"re:.*(attention|feedforward).*kernel", "re:head/kernel"]
    )
    # 2 encoder layers x 6 + 2 decoder layers x 10 projections + head.
    assert ops[("FULLY_CONNECTED", ("INT8", "INT8"), ("INT8",))] == 2 * 6 + 2 * 10 + 1
    assert not any(
        op == "FULLY_CONNECTED" and inputs[0] == "FLOAT32" for op, inputs, _ in ops
    )
    assert ops[("BATCH_MATMUL", ("INT8", "INT8"), ("INT8",))] == 2 * 2 + 2 * 4


@pytest.mark.large
@pytest.mark.filterwarnings("ignore:Layer '.*' \\(of type T5MultiHeadAttention\\)")
def test_t5_backbone_converts_to_int8_kernels():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=VOCABULARY,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        key_value_dim=8,
        dropout=0.0,
    )
    model, ops = _qat_through_head(
        backbone,
        [r"re:transformer_(encoder|decoder)_layer_\d+/.*kernel", "re:head/kernel"],
    )
    # T5's own attention: 4 projections each (the score matmuls are T5's, not
    # keras MultiHeadAttention, so they stay float); gated FFN: 3 Dense.
    assert (
        ops[("FULLY_CONNECTED", ("INT8", "INT8"), ("INT8",))]
        == 2 * (4 + 3) + 2 * (8 + 3) + 1
    )
