"""Bad input to clustering: one-line UserErrors that name the problem and fix."""

import keras
import numpy as np
import pytest
from cluster_checks import fit_mlp, mlp_data, numpy, small_mlp

import tfaccel
from tfaccel.clustering import ClusterAssignments, _state, cluster
from tfaccel.errors import UserError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_clusters": 1}, r"at least 2 .* Received: num_clusters=1$"),
        ({"num_clusters": 0}, "at least 2"),
        ({"num_clusters": 2.0}, r"must be an int >= 2\. Received: num_clusters=2\.0"),
        ({"num_clusters": True}, "must be an int >= 2"),
        (
            {"init": "kmeans"},
            r"Unknown centroid `init` 'kmeans'; use one of 'kmeans\+\+'",
        ),
        ({"per_channel": "yes"}, "`per_channel` must be True or False"),
        ({"preserve_sparsity": None}, "`preserve_sparsity` must be True or False"),
        ({"update_freq": 0}, "`update_freq` must be a number of steps >= 1 or 'epoch'"),
        ({"update_freq": "batch"}, "Received: update_freq='batch'"),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"num_clusters": 4, **kwargs}
    with pytest.raises(UserError, match=message) as error:
        cluster(small_mlp(), [".*kernel"], **arguments)
    assert "\n" not in str(error.value)


def test_more_clusters_than_weights():
    with pytest.raises(UserError, match=r"`num_clusters`=300 is larger than the 256 "):
        cluster(small_mlp(), ["mlp/out/kernel"], 300)
    # Per channel, a channel holds one column of the (in, out) view: 16 weights.
    with pytest.raises(
        UserError,
        match=r"larger than the 16 weights of 'mlp/hidden/kernel' \(output channel 0\)",
    ):
        cluster(small_mlp(), ["mlp/hidden/kernel"], 17, per_channel=True)


def test_too_few_non_zero_weights_with_preserved_sparsity():
    model = small_mlp()
    kernel = model.get_layer("out").kernel
    kernel.assign(np.where(np.arange(256).reshape(32, 8) < 3, numpy(kernel), 0.0))
    with pytest.raises(
        UserError, match=r"'mlp/out/kernel' has 3 non-zero weights, too few for 4 "
    ):
        cluster(model, ["mlp/out/kernel"], 4)
    cluster(model, ["mlp/out/kernel"], 4, preserve_sparsity=False)  # zeros count


def test_too_few_distinct_weights():
    model = small_mlp()
    model.get_layer("out").kernel.assign(np.ones((32, 8)))
    with pytest.raises(UserError, match=r"gives only 1 distinct density centroids"):
        cluster(model, ["mlp/out/kernel"], 2, init="density")


def test_empty_clusters_at_the_start_are_warned_about():
    model = small_mlp()
    # Only -1 and 3: linear centroids -1, 1/3, 5/3, 3 leave the middle ones empty.
    values = np.where(np.arange(256).reshape(32, 8) % 2, 3.0, -1.0)
    model.get_layer("out").kernel.assign(values)
    with pytest.warns(UserWarning, match=r"'mlp/out/kernel' starts with 2 empty"):
        cluster(model, ["mlp/out/kernel"], 4, init="linear")


def test_regex_matching_nothing_lists_example_paths():
    with pytest.raises(UserError, match=r"matches no trainable variable path.*mlp/"):
        cluster(small_mlp(), [".*attention.*kernel"], 4)


def test_model_not_built():
    model = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(UserError, match=r"needs a built Keras 3 model"):
        cluster(model, [".*kernel"], 4)


def test_unsupported_variables_name_their_layer():
    with pytest.raises(UserError, match=r"Cannot cluster 'mlp/hidden/bias' \(Dense\)"):
        cluster(small_mlp(), [".*"], 4)
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.LayerNormalization(name="norm")]
    )
    with pytest.raises(UserError, match=r"\(LayerNormalization\).*Received: path="):
        cluster(model, [".*gamma"], 2)


def test_failed_cluster_leaves_the_model_untouched():
    model = small_mlp()
    weights = [v.path for v in model.weights]
    with pytest.raises(UserError, match="mlp/out/kernel"):
        cluster(model, ["mlp/hidden/kernel", "mlp/out/kernel"], 300)
    assert [v.path for v in model.weights] == weights
    assert [type(layer) for layer in model.layers] == [keras.layers.Dense] * 2
    assert not _state.find_states(model)


def test_clustering_twice():
    model = cluster(small_mlp(), [".*kernel"], 4)
    with pytest.raises(UserError, match=r"already clustered .*strip_clustering"):
        cluster(model, [".*kernel"], 4)
    outer = keras.Sequential([keras.Input((16,)), model], name="outer")
    with pytest.raises(UserError, match=r"Model 'outer' is already clustered"):
        cluster(outer, ["mlp/hidden/kernel"], 4)
    # An enclosing model's clustering, seen from the nested model.
    inner = small_mlp()
    outer = keras.Sequential([keras.Input((16,)), inner], name="outer")
    cluster(outer, ["mlp/hidden/kernel"], 4)
    with pytest.raises(UserError, match=r"'mlp/hidden/kernel' is already clustered"):
        cluster(inner, [".*kernel"], 4)


def test_quantization_aware_layers_must_be_clustered_before_qat():
    model = tfaccel.quantize_aware(small_mlp(), targets=[".*kernel"])
    with pytest.raises(UserError, match=r"quantization-aware\. Cluster before"):
        cluster(model, ["mlp/hidden/kernel"], 4)


def test_quantized_layers_are_refused():
    # float8 keeps a float, trainable kernel, but its call reads it directly.
    model = small_mlp()
    model.get_layer("out").quantize("float8")
    with pytest.raises(UserError, match=r"'mlp/out/kernel': its layer has LoRA or"):
        cluster(model, ["mlp/out/kernel"], 4)


def test_callback_on_a_model_without_clustering():
    with pytest.raises(UserError, match=r"ClusterAssignments found no clustered"):
        fit_mlp(small_mlp(), callbacks=[ClusterAssignments()], steps=1)


def test_an_optimizer_built_before_clustering_asks_for_compile():
    model = fit_mlp(small_mlp(), callbacks=[], steps=1)
    cluster(model, [".*kernel"], 4)
    x, y = mlp_data(steps=1)
    with pytest.raises(UserError, match=r"call model.compile\(\) again after"):
        model.fit(x, y, verbose=0, callbacks=[ClusterAssignments()])
    fit_mlp(model, steps=1)  # compiles again
