"""What a saved model keeps of its clustering, to cluster it again on load.

`save_spec` lists each clustered weight's path, centroid shape and whether
it has a sparsity mask; `load_spec` gives the rebuilt model the same
variables with placeholder values, which the saved weights then fill
(`tfaccel.core.saving`).
"""

import numpy as np

from tfaccel.clustering import _state
from tfaccel.clustering.cluster import _apply
from tfaccel.core import saving
from tfaccel.core.compiled import forget_compiled
from tfaccel.core.kernels import input_axes, owner_layers
from tfaccel.core.strategy import model_strategy


def save_spec(model):
    """Returns how `model` itself is clustered, without values, or None."""
    state = getattr(model, _state.ATTRIBUTE, None)
    if state is None:
        return None
    return {
        "num_clusters": state.num_clusters,
        "init": state.init,
        "per_channel": state.per_channel,
        "preserve_sparsity": state.preserve_sparsity,
        "update_freq": state.update_freq,
        "weights": [
            {
                "path": record.variable.path,
                "centroids": list(record.centroids.shape),
                "indices_dtype": str(record.indices.dtype),
                "mask": record.mask is not None,
            }
            for record in state.weights
        ],
    }


def load_spec(model, spec):
    """Clusters `model` (rebuilt from its config) as `save_spec` described it."""
    by_path = {variable.path: variable for variable in model.weights}
    missing = [e["path"] for e in spec["weights"] if e["path"] not in by_path]
    if missing:
        raise ValueError(
            f"The saved clustering names weights this model lacks: {missing[:3]}. "
            f"Received: paths={missing[:3]}"
        )
    owners = owner_layers(model)
    records = []
    with model_strategy(model).scope():
        for entry in spec["weights"]:
            variable = by_path[entry["path"]]
            layer = owners.get(id(variable))
            dtype = np.dtype(variable.dtype)
            shape = tuple(variable.shape)
            records.append(
                _apply(
                    variable,
                    layer,
                    input_axes(variable, layer),
                    np.zeros(entry["centroids"], dtype),
                    np.zeros(shape, entry["indices_dtype"]),
                    np.ones(shape, dtype) if entry["mask"] else None,
                )
            )
    state = _state.ClusteringState(
        records,
        spec["num_clusters"],
        spec["init"],
        spec["per_channel"],
        spec["preserve_sparsity"],
        spec["update_freq"],
    )
    object.__setattr__(model, _state.ATTRIBUTE, state)
    forget_compiled(model)
    return saving.attach(model)
