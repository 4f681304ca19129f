"""Centroid initialisation and nearest-centroid assignment, in NumPy.

Every function works on the host on a 1-D array of weights (one kernel, or
one output channel of it) and is deterministic: ties break by position, and
k-means++ draws from a seeded generator, so every replica and every run
computes the same clusters.
"""

import numpy as np

INITS = ("kmeans++", "linear", "density")


def initial_centroids(values, num_clusters, init, rng):
    """Returns `num_clusters` sorted centroids for the 1-D array `values`.

    - `"linear"`: evenly spaced between `min(values)` and `max(values)`.
    - `"kmeans++"`: Arthur & Vassilvitskii, "k-means++: The Advantages of
      Careful Seeding" (2007): the first centroid is a weight drawn
      uniformly, each next one a weight drawn with probability proportional
      to its squared distance from the nearest centroid so far.
    - `"density"`: the `(j + 1/2) / k` quantiles of the weights' CDF, so each
      centroid sits in the middle of an equal share of the weights: dense
      regions of the distribution get more centroids.

    All three lie in `[min(values), max(values)]`. When `values` holds fewer
    distinct numbers than `num_clusters`, some centroids repeat; callers
    check for that.

    Args:
        values: 1-D float array (the weights to cluster, zeros excluded when
            sparsity is preserved).
        num_clusters: int >= 2.
        init: one of `INITS`.
        rng: a `np.random.Generator`, used by `"kmeans++"` only.

    Returns:
        A float64 array of shape `(num_clusters,)`, sorted ascending.
    """
    values = np.asarray(values, dtype=np.float64)
    if init == "linear":
        return np.linspace(values.min(), values.max(), num_clusters)
    if init == "density":
        levels = (np.arange(num_clusters) + 0.5) / num_clusters
        return np.quantile(values, levels)
    return np.sort(kmeans_plus_plus(values, num_clusters, rng))


def kmeans_plus_plus(values, num_clusters, rng):
    """Returns `num_clusters` weights picked by k-means++ seeding (unsorted)."""
    chosen = [values[rng.integers(values.size)]]
    distance = np.square(values - chosen[0])
    for _ in range(1, num_clusters):
        total = distance.sum()
        if total == 0:  # fewer distinct values than clusters
            chosen.append(chosen[-1])
            continue
        pick = np.searchsorted(np.cumsum(distance), rng.random() * total, "right")
        chosen.append(values[min(pick, values.size - 1)])
        distance = np.minimum(distance, np.square(values - chosen[-1]))
    return np.asarray(chosen)


def nearest(values, centroids):
    """Returns, for each value, the index of its nearest centroid.

    `centroids` need not be sorted (training moves them). A value halfway
    between two centroids goes to the smaller one.

    Args:
        values: float array of any shape.
        centroids: 1-D float array.

    Returns:
        An int32 array of the shape of `values`.
    """
    centroids = np.asarray(centroids, dtype=np.float64)
    order = np.argsort(centroids, kind="stable")
    ordered = centroids[order]
    bounds = (ordered[1:] + ordered[:-1]) / 2
    slot = np.searchsorted(bounds, np.asarray(values, dtype=np.float64), "left")
    return order[slot].astype(np.int32)


def assign(view, centroids):
    """Returns flat centroid indices for the `(in, out)` view of a kernel.

    Args:
        view: float array `(in, out)`.
        centroids: `(k,)` for one set per kernel, or `(out, k)` per channel.

    Returns:
        An int32 array `(in, out)` of indices into `centroids.reshape(-1)`:
        channel `j`'s weights index `j * k + cluster`.
    """
    if centroids.ndim == 1:
        return nearest(view, centroids)
    k = centroids.shape[1]
    indices = np.empty(view.shape, dtype=np.int32)
    for channel in range(view.shape[1]):
        indices[:, channel] = nearest(view[:, channel], centroids[channel])
        indices[:, channel] += channel * k
    return indices


def distinct_counts(view):
    """Returns the number of distinct non-zero values in each column of `view`."""
    ordered = np.sort(view, axis=0)  # (in, out)
    changes = np.concatenate(
        [np.ones((1, view.shape[1]), bool), ordered[1:] != ordered[:-1]]
    )
    return np.sum(changes & (ordered != 0), axis=0)
