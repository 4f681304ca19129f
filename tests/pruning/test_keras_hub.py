"""Pruning keras-hub BART and T5 backbones, built offline from tiny configs.

Targeted variable paths:

- BART (`TransformerEncoder`/`TransformerDecoder`):
  `transformer_encoder_layer_{i}/self_attention_layer/{query,key,value,attention_output}/kernel`,
  `transformer_decoder_layer_{i}/{self,cross}_attention/{query,key,value,attention_output}/kernel`,
  `transformer_{encoder,decoder}_layer_{i}/feedforward_{intermediate,output}_dense/kernel`.
- T5 (own layers, `Dense` kernels):
  `transformer_{encoder,decoder}_layer_{i}/{self,cross}_attention/{query,key,value,output}_projector/kernel`,
  `transformer_{encoder,decoder}_layer_{i}/{input,gate,output}_projector/kernel`.
"""

import keras
import keras_hub
import numpy as np
import pytest
from pruning_checks import run_pruning_test

import tfaccel

VOCABULARY = 50
BART_TARGETS = ["re:.*(attention|feedforward).*kernel"]
T5_TARGETS = [r"re:transformer_(encoder|decoder)_layer_\d+/.*kernel"]


def _fit_through_head(backbone, callbacks, steps=4):
    # A fit-able model around the backbone: a vocabulary head on its decoder.
    inputs = {
        name: keras.Input((None,), dtype="int32", name=name) for name in backbone.input
    }
    hidden = backbone(inputs)["decoder_sequence_output"]  # (batch, tgt, hidden)
    model = keras.Model(inputs, keras.layers.Dense(VOCABULARY, name="head")(hidden))
    rng = np.random.default_rng(0)
    ids = lambda: rng.integers(1, VOCABULARY, (4 * steps, 8)).astype("int32")  # noqa: E731
    x = {name: ids() for name in backbone.input}
    x.update({name: np.ones_like(x[name]) for name in x if name.endswith("mask")})
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, ids(), batch_size=4, verbose=0, callbacks=callbacks)


def _schedule():
    return tfaccel.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=2, frequency=1)


@pytest.mark.large
def test_bart_backbone_attention_and_feedforward_kernels():
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
    targets = run_pruning_test(
        backbone, _fit_through_head, BART_TARGETS, _schedule(), 0.5
    )
    assert len(targets) == 2 * (4 + 2) + 2 * (8 + 2)
    paths = {v.path for v in targets}
    assert (
        "transformer_decoder_layer_1/cross_attention/attention_output/kernel" in paths
    )
    assert "transformer_encoder_layer_0/feedforward_output_dense/kernel" in paths


@pytest.mark.large
@pytest.mark.filterwarnings("ignore:Layer '.*' \\(of type T5MultiHeadAttention\\)")
def test_t5_backbone_attention_and_feedforward_kernels():
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
    targets = run_pruning_test(
        backbone, _fit_through_head, T5_TARGETS, _schedule(), 0.5
    )
    assert len(targets) == 2 * (4 + 3) + 2 * (8 + 3)
    paths = {v.path for v in targets}
    assert (
        "transformer_decoder_layer_0/cross_attention/output_projector/kernel" in paths
    )
    assert "transformer_encoder_layer_1/gate_projector/kernel" in paths
