"""Training clustered weights: centroid gradients, fit, the assignment callback."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from cluster_checks import fit_mlp, mlp_data, numpy, records, small_mlp

import tfaccel.clustering
from tfaccel.clustering import ClusterAssignments, _centroids, _state
from tfaccel.core import kernels


def _sparse_mlp():
    # A quarter of the hidden kernel is exactly zero, as after prune + strip.
    model = small_mlp()
    kernel = model.get_layer("hidden").kernel
    values = numpy(kernel)
    rows, columns = np.indices(values.shape)
    values[(rows + columns) % 4 == 0] = 0.0
    kernel.assign(values)
    return model


@pytest.mark.parametrize("per_channel", [False, True])
def test_centroid_gradient_is_the_scatter_sum_of_kernel_gradients(per_channel):
    model = _sparse_mlp()
    tfaccel.clustering.cluster(model, ["mlp/hidden/kernel"], 4, per_channel=per_channel)
    record = records(model)["mlp/hidden/kernel"]
    hidden, out = model.get_layer("hidden"), model.get_layer("out")
    x, _ = mlp_data(steps=2)
    r = np.random.default_rng(1).normal(size=(8, 8)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x) * r)
    ours = numpy(tape.gradient(loss, record.centroids.value))

    # The same loss with the clustered kernel as a plain tensor.
    kernel = tf.constant(numpy(hidden.kernel))
    with tf.GradientTape() as tape:
        tape.watch(kernel)
        h = tf.nn.relu(x @ kernel + numpy(hidden.bias))
        loss = tf.reduce_sum((h @ numpy(out.kernel) + numpy(out.bias)) * r)
    d_kernel = numpy(tape.gradient(loss, kernel)) * numpy(record.mask)
    indices = numpy(record.indices).ravel()
    expected = np.bincount(indices, d_kernel.ravel(), minlength=ours.size)
    assert ours.shape == ((32, 4) if per_channel else (4,))
    np.testing.assert_allclose(ours.ravel(), expected, rtol=1e-4, atol=1e-4)
    assert np.abs(expected).max() > 1.0  # a real gradient, not all zeros


def test_fit_trains_centroids_only_and_keeps_num_clusters_values():
    model = small_mlp()
    tfaccel.clustering.cluster(model, [".*kernel"], 4, update_freq=2)
    kernel = model.get_layer("hidden")._kernel
    original = numpy(kernel)
    record = records(model)["mlp/hidden/kernel"]
    before = numpy(record.centroids)
    paths = [v.path for v in model.trainable_weights]
    assert "mlp/hidden/kernel" not in paths
    assert "mlp/hidden/cluster_centroids" in paths
    fit_mlp(model, callbacks=[])  # no refresh: only the optimizer acts
    after = numpy(record.centroids)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_array_equal(numpy(kernel), original)  # frozen
    fit_mlp(model)  # the callback refreshes every 2 steps
    assert np.abs(numpy(record.centroids) - after).max() > 1e-3
    for row in tfaccel.clustering.clustering_summary(model, print_fn=lambda _: None)[
        :-1
    ]:
        assert row["distinct"] == 4 and row["clusters"] == 4, row


def test_refresh_moves_clusters_with_their_centroids_then_to_the_nearest():
    model = small_mlp()
    tfaccel.clustering.cluster(model, ["mlp/out/kernel"], 3, per_channel=True)
    record = records(model)["mlp/out/kernel"]
    original = numpy(record.variable)
    indices = numpy(record.indices)
    centroids = numpy(record.centroids)  # (channels, k)

    # Every centroid moved by 1: the clusters move along, nobody changes.
    record.centroids.assign(centroids + 1.0)
    record.refresh()
    assert record.reassigned == 0.0
    np.testing.assert_array_equal(numpy(record.indices), indices)
    np.testing.assert_allclose(numpy(record.variable), original + 1.0, rtol=1e-6)

    # Cluster 0 of each channel jumps onto cluster 1: its members follow it
    # and now sit nearer to (or as near as) cluster 1.
    moved = numpy(record.centroids).copy()
    moved[:, 0] = moved[:, 1]
    moved[:, 1] += 1e-3
    record.centroids.assign(moved)
    reference = numpy(record.variable) + (moved - centroids - 1.0).ravel()[indices]
    record.refresh()
    view = kernels.to_matrix(reference, record.input_axes)
    np.testing.assert_array_equal(numpy(record.indices), _centroids.assign(view, moved))
    assert 0.0 < record.reassigned < 1.0
    np.testing.assert_array_equal(numpy(record.anchors), moved)
    gathered = moved.ravel()[numpy(record.indices)]  # (in, out)
    np.testing.assert_array_equal(numpy(model.get_layer("out").kernel), gathered)


@pytest.mark.parametrize(
    ("update_freq", "steps_per_execution", "epochs", "refreshes"),
    [(3, 1, 1, 2), (3, 2, 1, 2), (1, 1, 1, 7), ("epoch", 1, 2, 2), (100, 1, 1, 0)],
)
def test_callback_refreshes_on_its_schedule(
    update_freq, steps_per_execution, epochs, refreshes
):
    model = small_mlp()
    tfaccel.clustering.cluster(model, [".*kernel"], 4, update_freq=update_freq)
    x, y = mlp_data(steps=8)
    model.compile("sgd", "mse", steps_per_execution=steps_per_execution)
    model.fit(
        x, y, batch_size=4, epochs=epochs, verbose=0, callbacks=[ClusterAssignments()]
    )
    ((_, state),) = _state.find_states(model)
    assert state.refreshes == refreshes


def test_a_new_optimizer_restarts_the_step_count():
    state = _state.ClusteringState([], 4, "linear", False, True, update_freq=5)
    for step in (0, 4, 5, 9, 10, 12):
        state.advance(step)
    assert state.refreshes == 2  # steps 5 and 10
    state.advance(5)  # a fresh optimizer that restarts at step 5
    assert state.refreshes == 3


def test_callback_writes_reassigned_fractions_to_tensorboard(tmp_path):
    model = small_mlp()
    tfaccel.clustering.cluster(model, [".*kernel"], 4, update_freq=1)
    fit_mlp(model, callbacks=[ClusterAssignments(log_dir=tmp_path)], steps=3)
    tags = set()
    for event_file in tmp_path.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(value.tag for value in event.summary.value)
    assert tags == {
        "clustering/mlp/hidden/kernel/reassigned",
        "clustering/mlp/out/kernel/reassigned",
    }


def test_mixed_precision_reads_the_clustered_kernel_in_float16():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = small_mlp()
    finally:
        keras.config.set_dtype_policy("float32")
    tfaccel.clustering.cluster(model, [".*kernel"], 4)
    record = records(model)["mlp/hidden/kernel"]
    assert record.centroids.dtype == "float32"
    x, _ = mlp_data(steps=1)
    assert model(x).dtype == "float16"
    fit_mlp(model, steps=2)


def test_save_weights_keeps_the_clustering_state(tmp_path):
    # As BackupAndRestore does: weights of a clustered model, mid-training.
    model = _sparse_mlp()
    tfaccel.clustering.cluster(model, [".*kernel"], 4, per_channel=True, update_freq=2)
    fit_mlp(model, steps=3)
    model.save_weights(tmp_path / "clustered.weights.h5")
    other = _sparse_mlp()
    tfaccel.clustering.cluster(other, [".*kernel"], 4, per_channel=True)
    other.load_weights(tmp_path / "clustered.weights.h5")
    theirs = records(other)
    for path, record in records(model).items():
        assert (record.mask is None) == (path == "mlp/out/kernel")
        names = ("variable", "centroids", "anchors", "indices", "mask")
        for name in names if record.mask is not None else names[:-1]:
            np.testing.assert_array_equal(
                numpy(getattr(record, name)), numpy(getattr(theirs[path], name))
            )
    x, _ = mlp_data(steps=1)
    np.testing.assert_array_equal(numpy(other(x)), numpy(model(x)))
