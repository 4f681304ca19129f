"""strip_clustering: plain weights with k values, same outputs, saves and loads."""

import keras
import numpy as np
import pytest
from cluster_checks import (
    assert_clustered,
    assert_saves_with_optimizer,
    fit_mlp,
    fit_seq2seq,
    mlp_data,
    numpy,
    records,
    seq2seq_data,
    small_mlp,
    tiny_model,
)

import tfaccel
from tfaccel.clustering import (
    ClusterAssignments,
    _state,
    cluster,
    clustering_summary,
    strip_clustering,
)
from tfaccel.core.targets import match_variables
from tfaccel.models import Seq2SeqTransformer, load_model, save_model

SEQ2SEQ_TARGETS = [
    "re:.*(attention|feedforward).*kernel",
    ".*token_embedding/embeddings",
    "lm_head/kernel",
]


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("init", ["kmeans++", "linear", "density"])
def test_strip_leaves_num_clusters_values_and_the_same_outputs(init, per_channel):
    model = small_mlp()
    weights = [v.path for v in model.weights]
    variables = match_variables(model, [".*kernel"])
    cluster(model, [".*kernel"], 4, init=init, per_channel=per_channel, update_freq=2)
    fit_mlp(model, steps=4)
    x, _ = mlp_data(steps=2)
    before = numpy(model(x))
    assert strip_clustering(model) is model
    np.testing.assert_array_equal(numpy(model(x)), before)
    assert [v.path for v in model.weights] == weights
    assert [type(layer) for layer in model.layers] == [keras.layers.Dense] * 2
    assert all(v.trainable for v in model.weights)
    assert not _state.find_states(model)
    assert not any(hasattr(layer, _state.LAYER_ATTRIBUTE) for layer in model.layers)
    assert_clustered(model, variables, 4, per_channel=per_channel)
    fit_mlp(model, callbacks=[], steps=2)  # trains as a plain model again
    assert np.unique(numpy(variables[0])).size > 4


def test_prune_strip_cluster_fit_strip_keeps_every_zero():
    model = small_mlp()
    schedule = tfaccel.ConstantSparsity(0.5, begin_step=0, frequency=1)
    tfaccel.prune(model, [".*kernel"], schedule)
    fit_mlp(model, callbacks=tfaccel.callbacks(model), steps=2)
    tfaccel.strip(model)
    variables = match_variables(model, [".*kernel"])
    zeros = [numpy(v) == 0 for v in variables]
    assert [int(z.sum()) for z in zeros] == [256, 128]

    cluster(model, [".*kernel"], 8, update_freq=1)
    fit_mlp(model, steps=4, optimizer=keras.optimizers.Adam(0.05))
    strip_clustering(model)
    for variable, zero in zip(variables, zeros, strict=True):
        np.testing.assert_array_equal(numpy(variable) == 0, zero)
    assert_clustered(model, variables, 8)


def test_without_preserve_sparsity_zeros_are_clustered_like_any_weight():
    model = small_mlp()
    kernel = model.get_layer("out").kernel
    kernel.assign(np.where(np.arange(256).reshape(32, 8) % 2, numpy(kernel), 0.0))
    cluster(model, ["mlp/out/kernel"], 3, preserve_sparsity=False)
    assert records(model)["mlp/out/kernel"].mask is None
    fit_mlp(model, steps=4, optimizer=keras.optimizers.SGD(0.5))
    strip_clustering(model)
    values = numpy(kernel)
    assert np.unique(values).size == 3 and not np.any(values == 0)


def test_summary_measures_clustered_and_stripped_weights():
    model = small_mlp()
    cluster(model, [".*kernel"], 4, per_channel=True)
    printed = []
    rows = clustering_summary(model, print_fn=printed.append)
    assert [(r["path"], r["shape"], r["size"]) for r in rows] == [
        ("mlp/hidden/kernel", (16, 32), 512),
        ("mlp/out/kernel", (32, 8), 256),
        ("total", None, 768),
    ]
    assert [r["distinct_per_channel"] for r in rows] == [4, 4, None]
    assert [r["clusters"] for r in rows] == [4, 4, None]
    assert rows[0]["per_channel"] is True and rows[0]["distinct"] > 4
    (text,) = printed
    assert "mlp/hidden/kernel" in text and "Clustering summary" in text
    strip_clustering(model)
    with pytest.raises(tfaccel.errors.UserError, match="not clustered"):
        clustering_summary(model, print_fn=print)
    rows = clustering_summary(model, targets=["mlp/out/.*"], print_fn=print)
    assert [r["path"] for r in rows] == ["mlp/out/kernel", "mlp/out/bias", "total"]
    assert rows[0]["distinct_per_channel"] == 4 and rows[0]["clusters"] is None


def test_strip_leaves_a_model_that_is_not_clustered_alone():
    model = small_mlp()
    before = [numpy(v) for v in model.weights]
    assert strip_clustering(model) is model
    for old, new in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(old, numpy(new))


@pytest.mark.large
def test_seq2seq_clusters_every_kernel_kind_and_round_trips_through_keras(tmp_path):
    model = tiny_model()
    x, _ = seq2seq_data(model, batch=4)
    model(x)
    weights = len(model.weights)
    variables = match_variables(model, SEQ2SEQ_TARGETS)
    assert len(variables) == 2 * 6 + 2 * 10 + 2 + 1
    cluster(model, SEQ2SEQ_TARGETS, 4, per_channel=True, update_freq=2)
    classes = {type(r.layer).__name__ for r in records(model).values()}
    assert classes == {
        "ClusteredEinsumDense",
        "ClusteredDense",
        "ClusteredReversibleEmbedding",
    }
    fit_seq2seq(model)
    logits = numpy(model(x))
    tokens = numpy(model.generate(x["encoder_token_ids"], max_length=6))
    strip_clustering(model)
    assert len(model.weights) == weights
    np.testing.assert_allclose(numpy(model(x)), logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(
        numpy(model.generate(x["encoder_token_ids"], max_length=6)), tokens
    )
    assert_clustered(model, variables, 4, per_channel=True)

    path = tmp_path / "clustered.keras"
    save_model(model, path)
    for loaded in (load_model(path), keras.saving.load_model(path, safe_mode=True)):
        assert type(loaded) is Seq2SeqTransformer
        np.testing.assert_allclose(numpy(loaded(x)), logits, rtol=1e-5, atol=1e-5)
        for ours, theirs in zip(model.weights, loaded.weights, strict=True):
            np.testing.assert_array_equal(numpy(ours), numpy(theirs))


@pytest.mark.large
def test_seq2seq_prune_strip_cluster_fit_strip_keeps_every_zero():
    targets = ["re:.*feedforward.*kernel", "re:.*attention_output/kernel"]
    model = tiny_model()
    x, _ = seq2seq_data(model, batch=4)
    model(x)
    schedule = tfaccel.ConstantSparsity(0.5, begin_step=0, frequency=1)
    tfaccel.prune(model, targets, schedule)
    fit_seq2seq(model, steps=2, callbacks=tfaccel.callbacks(model))
    tfaccel.strip(model)
    variables = match_variables(model, targets)
    zeros = [numpy(v) == 0 for v in variables]
    cluster(model, targets, 4, update_freq=1)
    fit_seq2seq(model, steps=3, callbacks=[ClusterAssignments()])
    strip_clustering(model)
    for variable, zero in zip(variables, zeros, strict=True):
        np.testing.assert_array_equal(numpy(variable) == 0, zero)
        assert zero.mean() == 0.5
    assert_clustered(model, variables, 4)


@pytest.mark.parametrize("kind", ["functional", "seq2seq"])
def test_a_stripped_model_saves_with_its_optimizer_and_trains_on(kind, tmp_path):
    # The optimizer had slots for the centroids; strip rebuilds it on the
    # kernels, so `model.save` writes slots that `load_model` can assign.
    if kind == "functional":
        keras.utils.set_random_seed(0)
        inputs = keras.Input((16,))
        hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(8, name="out")(hidden))
        x, y = mlp_data()
        cluster(model, ["hidden/kernel", "out/kernel"], 4, update_freq=2)
        fit_mlp(model)
    else:
        model = tiny_model()
        x, y = seq2seq_data(model, batch=8)
        model(x)
        cluster(model, SEQ2SEQ_TARGETS, 4, update_freq=2)
        fit_seq2seq(model)
    steps = int(numpy(model.optimizer.iterations))
    tfaccel.strip(model)
    assert {id(v) for v in model.optimizer._trainable_variables} == {
        id(v) for v in model.trainable_variables
    }
    assert int(numpy(model.optimizer.iterations)) == steps
    assert_saves_with_optimizer(model, x, y, tmp_path / "stripped.keras")
