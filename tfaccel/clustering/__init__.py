"""Weight clustering (weight sharing) for Keras 3, sparsity-preserving.

`cluster` shares `num_clusters` trainable centroids per kernel in place,
`ClusterAssignments` moves weights between clusters during `model.fit`,
`strip_clustering` leaves plain weights with that many distinct values, and
`clustering_summary` measures them.
"""

from tfaccel.clustering.cluster import cluster
from tfaccel.clustering.cluster_assignments import ClusterAssignments
from tfaccel.clustering.recipe import apply_modifier
from tfaccel.clustering.strip import strip_clustering
from tfaccel.clustering.summary import clustering_summary

__all__ = [
    "ClusterAssignments",
    "apply_modifier",
    "cluster",
    "clustering_summary",
    "strip_clustering",
]
