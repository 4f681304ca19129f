"""Clustering state kept beside a model, and the layers that read it.

The state is a plain Python object stored as `model._tfaccel_clustering`,
which Keras does not track. Each clustered layer holds its own variables,
added with `add_weight` the way Keras's `enable_lora` adds LoRA's, so the
optimizer trains the centroids and checkpoints keep the assignments:

- `cluster_centroids`: trainable, `(k,)`, or `(channels, k)` per channel;
- `cluster_anchors`: the centroids at the last assignment refresh;
- `cluster_indices`: int32, the kernel's shape, each weight's index into
  the flattened centroids;
- `cluster_mask`: 1 for a weight that is clustered, 0 for a zero kept at
  zero (sparsity-preserving); only when the kernel had zeros.

The layer reads the clustered weight through its `kernel` (or
`embeddings`) property: its class is swapped for a subclass whose property
returns `gather(centroids, indices) * mask` (see `clustered_class`).
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from tfaccel.clustering import _centroids
from tfaccel.core.kernels import from_matrix, to_matrix

NAME = "clustering"  # in tfaccel.core.registry
ATTRIBUTE = "_tfaccel_clustering"  # on the model: a ClusteringState
LAYER_ATTRIBUTE = "_tfaccel_clustered"  # on each clustered layer: a ClusteredWeight
_SUBCLASSES = {}  # (original class, property name) -> clustered subclass


@dataclasses.dataclass(eq=False)
class ClusteredWeight:
    """One clustered kernel or embedding table and its variables."""

    variable: object  # the original keras.Variable: not trained, moved by refresh
    layer: object  # the layer that owns it; its class is swapped
    attribute: str  # "kernel" or "embeddings": the property the layer reads
    input_axes: tuple  # contracted axes; channels are the (in, out) columns
    centroids: object  # trainable keras.Variable, (k,) or (channels, k)
    anchors: object  # the centroids at the last refresh, same shape
    indices: object  # int32 keras.Variable, the variable's shape
    mask: object  # float keras.Variable of the variable's shape, or None
    original_class: type  # put back by strip
    original_trainable: bool  # put back by strip
    reassigned: float = 0.0  # fraction of weights that moved at the last refresh

    def weight(self):
        """Returns the clustered weight: `gather(centroids, indices) * mask`."""
        centroids = ops.reshape(ops.convert_to_tensor(self.centroids), (-1,))
        weight = _gather(centroids, ops.convert_to_tensor(self.indices))
        if self.mask is not None:
            weight = ops.multiply(weight, ops.convert_to_tensor(self.mask))
        return weight

    def refresh(self):
        """Moves each original weight with its centroid, then to the nearest one.

        Each weight first moves by as much as its centroid moved since the
        last refresh (the `cluster_anchors`), so a cluster follows its
        trained centroid instead of being pulled back to where the frozen
        weights started; then every weight joins its nearest centroid.
        Runs on the host in cross-replica context: each assign writes the
        same value to every replica.
        """
        centroids = ops.convert_to_numpy(self.centroids)
        moved = (centroids - ops.convert_to_numpy(self.anchors)).reshape(-1)
        old = ops.convert_to_numpy(self.indices)
        values = ops.convert_to_numpy(self.variable) + moved[old]
        if self.mask is not None:
            values = values * ops.convert_to_numpy(self.mask)  # zeros stay zero
        view = to_matrix(values, self.input_axes)  # (in, out)
        indices = _centroids.assign(view, centroids)
        indices = from_matrix(indices, values.shape, self.input_axes)
        self.reassigned = float(np.mean(old != indices))
        self.variable.assign(values)
        self.indices.assign(indices)
        self.anchors.assign(centroids)


@dataclasses.dataclass(eq=False)
class ClusteringState:
    """Everything `cluster()` adds to a model; removed again by strip."""

    weights: list  # of ClusteredWeight
    num_clusters: int
    init: str
    per_channel: bool
    preserve_sparsity: bool
    update_freq: object  # int (optimizer steps) or "epoch"
    last_step: int = -1  # last step the callback saw (Python side)
    refreshes: int = 0  # assignment refreshes so far

    def advance(self, step):
        """Sets the step; refreshes assignments if a refresh step has passed.

        With `update_freq=N`, assignments are refreshed before the batch of
        every optimizer step that is a positive multiple of N (after every N
        steps of training). With `steps_per_execution > 1` the callback sees
        only every k-th step, so it refreshes once if any such step was
        passed since the last one it saw. A step at or below the last one
        means a new (or restored) optimizer; the count starts again there.
        """
        first = self.last_step + 1 if step > self.last_step else step
        self.last_step = step
        if self.update_freq == "epoch" or step <= 0:
            return
        first = max(first, 1)
        if step // self.update_freq > (first - 1) // self.update_freq:
            self.refresh()

    def refresh(self):
        """Moves every weight with its centroid, then to the nearest one."""
        for record in self.weights:
            record.refresh()
        self.refreshes += 1


def find_states(model):
    """Returns `(layer, state)` for `model` and every nested layer it clusters."""
    return [
        (layer, getattr(layer, ATTRIBUTE))
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if getattr(layer, ATTRIBUTE, None) is not None
    ]


# === Queries for tfaccel.core.registry ===


def marks(model):
    """Returns the ids of the clustered layers of `model`, however clustered.

    It reads each layer's `ClusteredWeight`, so it also finds layers that an
    enclosing model clustered.
    """
    return {
        id(layer)
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if getattr(layer, LAYER_ATTRIBUTE, None) is not None
    }


def frozen_variables(model):
    """Returns the clustered kernels: frozen (their centroids train)."""
    return [
        record.variable for _, state in find_states(model) for record in state.weights
    ]


def layer_weight(layer):
    """Returns the clustered weight that `layer` reads, or None if not clustered."""
    record = getattr(layer, LAYER_ATTRIBUTE, None)
    return None if record is None else record.weight()


def effective_weights(model):
    """Returns `{id(kernel): its clustered weight}` for every clustered kernel."""
    return {
        id(record.variable): record.weight()
        for _, state in find_states(model)
        for record in state.weights
    }


def own_variables(model):
    """Returns the centroids, anchors, indices and masks clustering added."""
    found = []
    for _, state in find_states(model):
        for record in state.weights:
            parts = (record.centroids, record.anchors, record.indices, record.mask)
            found.extend(part for part in parts if part is not None)
    return found


def clustered_class(cls, attribute):
    """Returns the subclass of `cls` whose `attribute` property is clustered.

    The subclass overrides that property, which reads the layer's
    `ClusteredWeight`, and saves and loads every variable of the layer in
    order, as `keras.layers.Layer` does (Dense's own saving knows only its
    kernel and bias), so `save_weights` and `BackupAndRestore` keep the
    clustering state. One subclass is made per original class and cached.
    Its name is `Clustered<Name>`; a saved model's config names the original
    class, and loading clusters the layer again (`tfaccel.core.saving`).
    """
    key = (cls, attribute)
    if key not in _SUBCLASSES:
        _SUBCLASSES[key] = type(cls)(
            f"Clustered{cls.__name__}",
            (cls,),
            {
                attribute: property(_clustered_weight),
                "save_own_variables": keras.layers.Layer.save_own_variables,
                "load_own_variables": keras.layers.Layer.load_own_variables,
                "__module__": __name__,
                "__doc__": f"{cls.__name__} whose `{attribute}` is clustered.",
            },
        )
    return _SUBCLASSES[key]


def _clustered_weight(layer):
    return getattr(layer, LAYER_ATTRIBUTE).weight()


@ops.custom_gradient
def _gather(centroids, indices):
    # `take` alone would give the centroids a sparse gradient with one row
    # per weight (and MirroredStrategy would all-gather it); summing per
    # centroid here gives the dense (k,) gradient dL/dc_j = sum of dL/dW_i
    # over the weights i in cluster j, which replicas all-reduce cheaply.
    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        flat = ops.reshape(upstream, (-1,))
        segments = ops.reshape(indices, (-1,))
        total = ops.segment_sum(flat, segments, num_segments=centroids.shape[0])
        return total, None

    return ops.take(centroids, indices, axis=0), grad


def counters(model):
    """Returns the callback's Python-side step and refresh count per state."""
    return [
        {"last_step": state.last_step, "refreshes": state.refreshes}
        for _, state in find_states(model)
    ]


def set_counters(model, saved):
    """Sets what `counters` returned, so assignments refresh when they would."""
    for (_, state), counts in zip(find_states(model), saved, strict=True):
        state.last_step = counts["last_step"]
        state.refreshes = counts["refreshes"]


def swapped_classes(model):
    """Returns `[(layer, original class)]` of every clustered layer of `model`."""
    return [
        (record.layer, record.original_class)
        for _, state in find_states(model)
        for record in state.weights
    ]


def describe(model):
    """Returns `{id(variable): "<k> clusters"}` of every clustered weight."""
    return {
        id(record.variable): f"{record.centroids.shape[-1]} clusters"
        for _, state in find_states(model)
        for record in state.weights
    }
