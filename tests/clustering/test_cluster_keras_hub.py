"""Clustering keras-hub BART and T5 backbones, built offline from tiny configs.

The logits come from the tied token embedding (`token_embedding(x,
reverse=True)`), as in `BartSeq2SeqLM` and `T5Seq2SeqLM`: the reverse
projection reads the clustered table through the `embeddings` property.
"""

import keras
import keras_hub
import numpy as np
import pytest
from cluster_checks import assert_clustered, numpy, records

from tfaccel.clustering import ClusterAssignments, cluster, strip_clustering
from tfaccel.core.targets import match_variables

VOCABULARY = 50
BART_TARGETS = ["re:.*(attention|feedforward).*kernel", ".*token_embedding/embeddings"]
T5_TARGETS = [
    r"re:transformer_(encoder|decoder)_layer_\d+/.*kernel",
    ".*token_embedding/embeddings",
]


def _with_tied_head(backbone):
    inputs = {
        name: keras.Input((None,), dtype="int32", name=name) for name in backbone.input
    }
    hidden = backbone(inputs)["decoder_sequence_output"]  # (batch, tgt, hidden)
    logits = backbone.token_embedding(hidden, reverse=True)  # (batch, tgt, vocab)
    return keras.Model(inputs, logits)


def _data(backbone, batch=8, length=8):
    rng = np.random.default_rng(0)
    x = {
        name: rng.integers(1, VOCABULARY, (batch, length)).astype("int32")
        for name in backbone.input
    }
    x.update({name: np.ones_like(x[name]) for name in x if name.endswith("mask")})
    return x, rng.integers(1, VOCABULARY, (batch, length)).astype("int32")


def run_keras_hub_test(backbone, targets, expected_count):
    """Clusters through a tied head, fits 2 steps, strips; checks the contract."""
    model = _with_tied_head(backbone)
    weights = [v.path for v in model.weights]
    variables = match_variables(model, targets)
    assert len(variables) == expected_count
    cluster(model, targets, 4, update_freq=1)
    clustered = records(model)
    assert set(clustered) == {v.path for v in variables}
    kinds = {type(r.layer).__name__ for r in clustered.values()}
    assert "ClusteredReversibleEmbedding" in kinds
    x, y = _data(backbone)
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, batch_size=4, verbose=0, callbacks=[ClusterAssignments()])
    moved = [
        np.abs(numpy(r.centroids) - numpy(r.anchors)).max() for r in clustered.values()
    ]
    assert min(moved) > 0, "a centroid got no gradient"
    logits = numpy(model(x))
    strip_clustering(model)
    assert [v.path for v in model.weights] == weights
    np.testing.assert_allclose(numpy(model(x)), logits, rtol=1e-5, atol=1e-5)
    assert_clustered(model, variables, 4)
    return variables


@pytest.mark.large
def test_bart_backbone_attention_feedforward_and_embeddings():
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
    paths = {
        v.path for v in run_keras_hub_test(backbone, BART_TARGETS, 2 * 6 + 2 * 10 + 1)
    }
    assert (
        "transformer_decoder_layer_1/cross_attention/attention_output/kernel" in paths
    )
    assert "transformer_encoder_layer_0/feedforward_output_dense/kernel" in paths


@pytest.mark.large
@pytest.mark.filterwarnings("ignore:Layer '.*' \\(of type T5MultiHeadAttention\\)")
def test_t5_backbone_projections_and_embeddings():
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
    paths = {
        v.path for v in run_keras_hub_test(backbone, T5_TARGETS, 2 * 7 + 2 * 11 + 1)
    }
    assert (
        "transformer_decoder_layer_0/cross_attention/output_projector/kernel" in paths
    )
    assert "transformer_encoder_layer_1/gate_projector/kernel" in paths
