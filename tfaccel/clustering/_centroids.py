"""Centroid initialisation and nearest-centroid assignment, in NumPy.

Every function works on the host on a 1-D array of weights (one kernel, or
one output channel of it) and is deterministic: ties break by position, and
k-means++ draws from a seeded generator, so every replica and every run
computes the same clusters.
"""

import numpy as np

INITS = ("kmeans++", "linear", "density")


def initial_centroids(values, num_clusters, init, rng, sparse=False):
    """Returns `num_clusters` sorted centroids for the 1-D array `values`.

    - `"linear"`: evenly spaced between `min(values)` and `max(values)`.
      With `sparse=True` the values are the survivors of magnitude pruning,
      which leaves no weight between the largest negative and the smallest
      positive one; the spacing then skips that interval, so no centroid is
      born in it with no members.
    - `"kmeans++"`: Arthur & Vassilvitskii, "k-means++: The Advantages of
      Careful Seeding" (2007): the first centroid is a weight drawn
      uniformly, each next one a weight drawn with probability proportional
      to its squared distance from the nearest centroid so far.
    - `"density"`: the `(j + 1/2) / k` quantiles of the weights' CDF, so each
      centroid sits in the middle of an equal share of the weights: dense
      regions of the distribution get more centroids.

    All three lie in `[min(values), max(values)]`. A centroid that no value
    is nearest to (linear spacing over a gap in the distribution, say) moves
    to the value farthest from its own centroid, until every centroid has a
    member. When `values` holds fewer distinct numbers than `num_clusters`,
    that cannot be done: k-means++ and density centroids then repeat, linear
    ones stay empty; callers check for both.

    Args:
        values: 1-D float array (the weights to cluster, zeros excluded when
            sparsity is preserved).
        num_clusters: int >= 2.
        init: one of `INITS`.
        rng: a `np.random.Generator`, used by `"kmeans++"` only.
        sparse: bool. `values` are the non-zero weights of a pruned kernel.

    Returns:
        A float64 array of shape `(num_clusters,)`, sorted ascending.
    """
    values = np.asarray(values, dtype=np.float64)
    if init == "linear":
        centroids = _linear(values, num_clusters, sparse)
    elif init == "density":
        levels = (np.arange(num_clusters) + 0.5) / num_clusters
        centroids = np.quantile(values, levels)
    else:
        centroids = kmeans_plus_plus(values, num_clusters, rng)
    return np.sort(_fill_empty(values, centroids))


def _linear(values, num_clusters, sparse):
    negative, positive = values[values < 0], values[values > 0]
    low = np.ptp(negative) if negative.size else 0.0
    high = np.ptp(positive) if positive.size else 0.0
    if not sparse or not low + high or not negative.size or not positive.size:
        return np.linspace(values.min(), values.max(), num_clusters)
    # Lay the two signed ranges end to end and space evenly along both.
    span = np.linspace(0.0, low + high, num_clusters)
    return np.where(span <= low, negative.min() + span, positive.min() + (span - low))


def _fill_empty(values, centroids):
    """Moves memberless centroids onto the worst-served values (see above)."""
    centroids = centroids.copy()
    for _ in range(centroids.size):
        members = nearest(values, centroids)
        empty = np.flatnonzero(np.bincount(members, minlength=centroids.size) == 0)
        error = np.abs(values - centroids[members])
        if not empty.size or error.max() == 0:
            break
        centroids[empty[0]] = values[np.argmax(error)]
    return centroids


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
