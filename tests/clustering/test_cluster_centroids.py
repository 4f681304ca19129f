"""Centroid initialisation and nearest-centroid assignment (NumPy, fast)."""

import numpy as np
import pytest

from tfaccel.clustering import _centroids


def _weights(size=500, seed=0):
    return np.random.default_rng(seed).normal(0.0, 0.1, size).astype("float32")


@pytest.mark.parametrize("init", _centroids.INITS)
@pytest.mark.parametrize("k", [2, 5, 16])
def test_centroids_are_sorted_distinct_and_within_the_range(init, k):
    values = _weights()
    centroids = _centroids.initial_centroids(values, k, init, np.random.default_rng(0))
    assert centroids.shape == (k,)
    assert np.all(np.diff(centroids) > 0)
    assert values.min() <= centroids[0] and centroids[-1] <= values.max()


def test_linear_is_evenly_spaced_from_min_to_max():
    values = np.array([0.9, -1.0, 0.1, 2.0])
    centroids = _centroids.initial_centroids(values, 4, "linear", None)
    np.testing.assert_allclose(centroids, [-1.0, 0.0, 1.0, 2.0])


def test_an_empty_centroid_moves_to_the_worst_served_weight():
    # Linear centroids -1, 0, 1, 2: nothing is nearest to 1, and 0.5 (a tie
    # between 0 and 1, which goes to 0) is the value farthest from its own.
    values = np.array([0.5, -1.0, 0.25, 2.0])
    centroids = _centroids.initial_centroids(values, 4, "linear", None)
    np.testing.assert_allclose(centroids, [-1.0, 0.0, 0.5, 2.0])
    assert np.bincount(_centroids.nearest(values, centroids)).min() == 1


def test_sparse_linear_skips_the_pruned_gap():
    # Pruning left nothing in (-0.5, 0.5): spacing runs over [-2, -0.5] and
    # [0.5, 2] laid end to end, 3 / 5 apart.
    rng = np.random.default_rng(0)
    survivors = np.concatenate([rng.uniform(-2, -0.5, 500), rng.uniform(0.5, 2, 500)])
    survivors = np.concatenate([survivors, [-2.0, -0.5, 0.5, 2.0]])
    sparse = _centroids.initial_centroids(survivors, 6, "linear", None, sparse=True)
    np.testing.assert_allclose(sparse, [-2.0, -1.4, -0.8, 0.8, 1.4, 2.0])
    # Over the whole range, two of the six would sit in the gap at -0.4, 0.4.
    dense = _centroids.initial_centroids(survivors, 6, "linear", None)
    np.testing.assert_allclose(dense, [-2.0, -1.2, -0.4, 0.4, 1.2, 2.0])


def test_kmeans_plus_plus_is_deterministic_with_a_seed_and_picks_weights():
    values = _weights()
    first, again, other = (
        _centroids.initial_centroids(values, 8, "kmeans++", np.random.default_rng(s))
        for s in (7, 7, 8)
    )
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.isin(first, values.astype(np.float64)).all()


def test_kmeans_plus_plus_spreads_over_separated_groups():
    # Three tight groups far apart: D^2 sampling puts one seed in each.
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(c, 0.01, 100) for c in (-5.0, 0.0, 5.0)])
    for seed in range(5):
        centroids = _centroids.initial_centroids(
            values, 3, "kmeans++", np.random.default_rng(seed)
        )
        np.testing.assert_allclose(centroids, [-5.0, 0.0, 5.0], atol=0.1)


def test_density_centroids_are_mid_quantiles():
    values = np.arange(1.0, 101.0)  # CDF(x) = x / 100
    centroids = _centroids.initial_centroids(values, 4, "density", None)
    np.testing.assert_allclose(
        centroids, np.quantile(values, [1 / 8, 3 / 8, 5 / 8, 7 / 8])
    )
    # A skewed distribution gets more centroids where it is dense.
    skewed = np.random.default_rng(0).exponential(1.0, 10_000)
    dense = _centroids.initial_centroids(skewed, 8, "density", None)
    assert np.sum(dense < 1.0) >= 5
    linear = _centroids.initial_centroids(skewed, 8, "linear", None)
    assert np.sum(linear < 1.0) == 1


def test_fewer_distinct_weights_than_clusters_repeat_a_centroid():
    values = np.array([1.0, 1.0, 2.0, 2.0, 2.0])
    rng = np.random.default_rng(0)
    for init in ("kmeans++", "density"):
        centroids = _centroids.initial_centroids(values, 3, init, rng)
        assert centroids.shape == (3,) and np.unique(centroids).size == 2, init
    # Linear spacing stays distinct, but its middle centroid has no member.
    linear = _centroids.initial_centroids(values, 3, "linear", rng)
    np.testing.assert_array_equal(linear, [1.0, 1.5, 2.0])
    assert set(_centroids.nearest(values, linear)) == {0, 2}


def test_nearest_handles_unsorted_centroids_and_ties():
    centroids = np.array([1.0, -1.0, 0.0])
    values = np.array([-2.0, -0.6, -0.5, 0.4, 0.5, 0.51, 9.0])
    np.testing.assert_array_equal(
        _centroids.nearest(values, centroids), [1, 1, 1, 2, 2, 0, 0]
    )


def test_assign_per_channel_indexes_the_flattened_centroids():
    view = np.array([[0.0, 10.0], [1.0, 12.0], [0.9, 10.9]])  # (in, out)
    centroids = np.array([[0.0, 1.0], [10.0, 12.0]])  # (channels, k)
    np.testing.assert_array_equal(
        _centroids.assign(view, centroids), [[0, 2], [1, 3], [1, 2]]
    )
    np.testing.assert_array_equal(
        _centroids.assign(view, centroids[1]), [[0, 0], [0, 1], [0, 0]]
    )
