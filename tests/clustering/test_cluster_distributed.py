"""Clustering under MirroredStrategy on two logical CPUs matches one device."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from cluster_checks import assert_clustered, mlp_data, numpy, records, small_mlp

from tfaccel.clustering import ClusterAssignments, _state, cluster, strip_clustering
from tfaccel.core.targets import match_variables


def _train(strategy, per_channel):
    with strategy.scope():
        model = small_mlp(seed=3)
    # Outside the scope: the state still goes under the model's strategy.
    cluster(model, [".*kernel"], 4, per_channel=per_channel, update_freq=2)
    with strategy.scope():
        model.compile(keras.optimizers.SGD(0.1), "mse")
    x, y = mlp_data(steps=5, batch=8)
    model.fit(
        x, y, batch_size=8, shuffle=False, verbose=0, callbacks=[ClusterAssignments()]
    )  # 5 steps: refreshes before steps 2 and 4
    return model


@pytest.mark.parametrize("per_channel", [False, True])
def test_mirrored_strategy_matches_one_device(mirrored_strategy, per_channel):
    mirrored = _train(mirrored_strategy, per_channel)
    single = _train(tf.distribute.get_strategy(), per_channel)
    ((_, state),) = _state.find_states(mirrored)
    assert state.refreshes == 2
    expected = records(single)
    for path, record in records(mirrored).items():
        for name in ("centroids", "anchors", "indices"):
            variable = getattr(record, name)
            assert isinstance(variable.value, tf.distribute.DistributedValues)
            first, second = (r.numpy() for r in variable.value.values)
            np.testing.assert_array_equal(first, second)
            # Replicas sum gradients in another order than one device: on an
            # AVX2-only EPYC centroids near 5e3 differed by 1.2e-5 relative.
            np.testing.assert_allclose(
                first, numpy(getattr(expected[path], name)), rtol=1e-4, atol=1e-6
            )
        assert np.abs(numpy(record.centroids) - numpy(record.anchors)).max() > 0
    strip_clustering(mirrored)
    strip_clustering(single)
    assert_clustered(
        mirrored, match_variables(mirrored, [".*kernel"]), 4, per_channel=per_channel
    )
    for ours, theirs in zip(mirrored.weights, single.weights, strict=True):
        np.testing.assert_allclose(numpy(ours), numpy(theirs), rtol=1e-4, atol=1e-6)
