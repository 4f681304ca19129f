"""Weight clustering (weight sharing) for Keras 3, sparsity-preserving.

`cluster` shares `num_clusters` trainable centroids per kernel in place,
`ClusterAssignments` moves weights between clusters during `model.fit`,
`strip_clustering` leaves plain weights with that many distinct values, and
`clustering_summary` measures them.
"""

from tfaccel.clustering import _state
from tfaccel.clustering.cluster import cluster
from tfaccel.clustering.cluster_assignments import ClusterAssignments
from tfaccel.clustering.recipe import apply_modifier
from tfaccel.clustering.spec import load_spec as _load_spec
from tfaccel.clustering.spec import save_spec as _save_spec
from tfaccel.clustering.strip import strip_clustering
from tfaccel.clustering.summary import clustering_summary
from tfaccel.core import registry

__all__ = [
    "ClusterAssignments",
    "apply_modifier",
    "cluster",
    "clustering_summary",
    "strip_clustering",
]

# === Registration ===

registry.register(
    registry.Technique(
        name=_state.NAME,
        label="clustered",
        order=20,  # after pruning (it keeps its zeros), before QAT
        # Stripped first: it writes the shared values into the kernels, which
        # QAT's strip then rounds onto the int8 grid.
        strip_order=10,
        find_states=_state.find_states,
        strip=strip_clustering,
        callback=ClusterAssignments,
        marks=_state.marks,
        frozen_variables=_state.frozen_variables,
        layer_weight=_state.layer_weight,
        effective_weights=_state.effective_weights,
        own_variables=_state.own_variables,
        describe=_state.describe,
        counters=_state.counters,
        set_counters=_state.set_counters,
        save_spec=_save_spec,
        load_spec=_load_spec,
        swapped_classes=_state.swapped_classes,
    )
)
