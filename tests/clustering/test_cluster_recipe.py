"""The `weight_clustering` recipe applier maps a modifier config onto `cluster`."""

import dataclasses

from cluster_checks import records, small_mlp

from tfaccel.clustering import _state, apply_modifier
from tfaccel.recipe.context import StageContext


@dataclasses.dataclass
class _Modifier:  # the fields of the proposed `WeightClustering` recipe config
    targets: list
    num_clusters: int = 16
    init: str = "kmeans++"
    per_channel: bool = False
    preserve_sparsity: bool = True
    update_freq: object = 100
    seed: int = 0


def test_apply_modifier_clusters_with_the_modifier_settings():
    model = small_mlp()
    modifier = _Modifier(["re:mlp/out/kernel"], 3, "density", True, update_freq="epoch")
    assert apply_modifier(model, modifier, StageContext(10)) is model
    ((_, state),) = _state.find_states(model)
    assert (state.num_clusters, state.init, state.per_channel) == (3, "density", True)
    assert state.update_freq == "epoch"
    assert list(records(model)) == ["mlp/out/kernel"]
    assert records(model)["mlp/out/kernel"].centroids.shape == (8, 3)
