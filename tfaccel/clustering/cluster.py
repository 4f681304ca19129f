"""`cluster`: weight clustering (weight sharing) of any Keras 3 model, in place.

How a layer reads its clustered kernel: the instance's class is swapped for
a subclass (`ClusteredDense`, `ClusteredEinsumDense`, `ClusteredEmbedding`,
one per original class) whose `kernel` (or `embeddings`) property returns
`gather(centroids, indices) * mask`. Keras's own `Dense`, `EinsumDense`
and `Embedding` read their weight only through that property (it is how
they apply LoRA), and so do the code paths that read it from outside the
layer: the tied reverse projection of keras-hub's `ReversibleEmbedding`
(T5 and BART logits), keras-hub layers that matmul with `sublayer.kernel`,
and `save_own_variables`. An instance-level `call` patch, as
`quantize_aware` uses, would have to copy each layer's `call` and would
miss every one of those readers. `strip_clustering` puts the original class
back, so the stripped model is the same plain model it was.
"""

import warnings

import keras
import numpy as np
from keras import ops

from tfaccel._tracking import unlocked
from tfaccel.clustering import _centroids, _state
from tfaccel.core import counts, registry, saving
from tfaccel.core.compiled import forget_compiled
from tfaccel.core.kernels import from_matrix, input_axes, owner_layers, to_matrix
from tfaccel.core.strategy import model_strategy
from tfaccel.core.targets import fullmatch, match_variables
from tfaccel.errors import UserError


def cluster(
    model,
    targets,
    num_clusters,
    init="kmeans++",
    per_channel=False,
    preserve_sparsity=True,
    update_freq=100,
    seed=0,
):
    """Clusters the weights of `model` whose paths match `targets`, in place.

    Weight clustering (weight sharing) as in Han et al., "Deep Compression"
    (2016, https://arxiv.org/abs/1510.00149) and tfmot's `cluster_weights`:
    each targeted weight takes the value of one of `num_clusters` shared
    centroids, so a kernel stores k floats plus a log2(k)-bit index per
    weight, and compresses well.

    - The centroids are trainable variables; the effective kernel is
      `gather(centroids, indices)`, so each centroid's gradient is the sum of
      the gradients of its member weights (tfmot's default).
    - The original kernel is not trained while clustered: it only keeps
      each weight's position for re-assignment. Every `update_freq`
      optimizer steps (or each epoch) the `ClusterAssignments` callback
      moves each weight by as much as its centroid moved, then to its
      nearest centroid, so weights change cluster as boundaries shift.
    - Each kernel holds `num_clusters` distinct values while no cluster is
      empty. k-means++ centroids are weights, so each starts with a member,
      and density starts nearly always do; linear spacing can leave a sparse
      tail empty. Clusters empty at the start are warned about.
    - `per_channel=True` gives each output unit (column of the kernel's
      `(in, out)` view, as for pruning) its own `num_clusters` centroids.
    - `preserve_sparsity=True` keeps exact zeros (from `tfaccel.prune`) at
      zero: a fixed mask multiplies the gathered kernel, zeros are not
      clustered and 0 is never a centroid that could move.

    Targets are regexes over `variable.path`, as for `tfaccel.prune`; they
    may name `Dense` and `EinsumDense` kernels and `Embedding` tables
    anywhere in the model, including keras-hub `TransformerEncoder`,
    `TransformerDecoder`, `BartBackbone` and `T5Backbone` layers. Compile
    the model after clustering it (the optimizer must see the centroids).
    Cluster after pruning (zeros are kept) and before
    `tfaccel.quantize_aware`; `strip_clustering` leaves plain weights that
    QAT can take.

    Args:
        model: a built Keras 3 model, changed in place.
        targets: list of regexes over variable paths.
        num_clusters: int >= 2, the number of shared values per kernel (per
            output channel with `per_channel`).
        init: `"kmeans++"` (seeded), `"linear"` (evenly spaced between min
            and max) or `"density"` (quantiles of the weights' CDF).
        per_channel: bool. One set of centroids per output channel.
        preserve_sparsity: bool. Keep zero weights at zero.
        update_freq: int, refresh assignments every this many optimizer
            steps, or `"epoch"` to refresh at each epoch end.
        seed: int. Seed of the k-means++ draws.

    Returns:
        `model`, ready for `model.fit(..., callbacks=[ClusterAssignments()])`.

    Example:

    ```python
    model = tfaccel.cluster(model, [r".*feedforward.*kernel"], num_clusters=16)
    model.compile(...)
    model.fit(ds, callbacks=tfaccel.callbacks(model))
    model = tfaccel.strip(model)
    ```
    """
    _check_arguments(num_clusters, init, per_channel, preserve_sparsity, update_freq)
    _check_model(model, targets)
    variables = match_variables(model, targets)
    owners = owner_layers(model)
    # Layers changed by a technique applied after clustering (QAT), by label.
    refused = {
        key: technique.label
        for technique, keys in registry.marks(model, after=_state.NAME)
        for key in keys
    }
    layers = [_owner(v, owners.get(id(v)), refused) for v in variables]
    rng = np.random.default_rng(seed)
    plans = [
        _plan(variable, layer, num_clusters, init, per_channel, preserve_sparsity, rng)
        for variable, layer in zip(variables, layers, strict=True)
    ]
    with model_strategy(model).scope():
        records = [_apply(*plan) for plan in plans]
    state = _state.ClusteringState(
        records, num_clusters, init, per_channel, preserve_sparsity, update_freq
    )
    object.__setattr__(model, _state.ATTRIBUTE, state)
    forget_compiled(model)
    return saving.attach(model)


def _check_arguments(num_clusters, init, per_channel, preserve_sparsity, update_freq):
    if isinstance(num_clusters, bool) or not isinstance(num_clusters, int | np.integer):
        raise UserError(
            "`num_clusters` must be an int >= 2. "
            f"Received: num_clusters={num_clusters!r}"
        )
    if num_clusters < 2:
        raise UserError(
            "`num_clusters` must be at least 2 (one cluster would make every "
            f"weight equal). Received: num_clusters={num_clusters}"
        )
    if init not in _centroids.INITS:
        raise UserError(
            f"Unknown centroid `init` {init!r}; use one of "
            f"{', '.join(map(repr, _centroids.INITS))}. Received: init={init!r}"
        )
    for name, value in (
        ("per_channel", per_channel),
        ("preserve_sparsity", preserve_sparsity),
    ):
        if not isinstance(value, bool):
            raise UserError(
                f"`{name}` must be True or False. Received: {name}={value!r}"
            )
    if update_freq != "epoch" and (
        isinstance(update_freq, bool)
        or not isinstance(update_freq, int)
        or update_freq < 1
    ):
        raise UserError(
            "`update_freq` must be a number of steps >= 1 or 'epoch'. "
            f"Received: update_freq={update_freq!r}"
        )


def _check_model(model, targets):
    if not isinstance(model, keras.Model) or not model.built:
        raise UserError(
            "`cluster` needs a built Keras 3 model; call it on a batch or "
            f"`build()` it first. Received: model={model!r}"
        )
    clustered = [layer.name for layer, _ in _state.find_states(model)]
    if clustered:
        raise UserError(
            f"Model '{model.name}' is already clustered (state on {clustered}); "
            "call tfaccel.clustering.strip_clustering(model) before clustering "
            f"it again. Received: model={model.name!r}"
        )
    # Clustered kernels are not trainable, so `match_variables` skips them;
    # name the ones an enclosing model clustered instead of matching nothing.
    for path in _clustered_paths(model):
        for target in targets if isinstance(targets, list | tuple) else ():
            if isinstance(target, str) and fullmatch(target, path):
                raise UserError(
                    f"'{path}' is already clustered (by an enclosing model); "
                    "strip that model's clustering first. "
                    f"Received: target={target!r}"
                )


def _clustered_paths(model):
    return [
        getattr(layer, _state.LAYER_ATTRIBUTE).variable.path
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if getattr(layer, _state.LAYER_ATTRIBUTE, None) is not None
    ]


def _owner(variable, layer, refused):
    """Returns the layer that reads `variable`, checking clustering can reach it."""
    path = variable.path
    attribute = _attribute(variable, layer)
    if attribute is None:
        kind = type(layer).__name__ if layer is not None else "unknown"
        raise UserError(
            f"Cannot cluster '{path}' ({kind}): clustering handles Dense and "
            "EinsumDense kernels and Embedding tables. Narrow `targets` so they "
            f"do not match it, e.g. [r'.*kernel']. Received: path={path!r}"
        )
    if id(layer) in refused:
        raise UserError(
            f"Cannot cluster '{path}': its layer is {refused[id(layer)]}. Cluster "
            "before tfaccel.quantize_aware (prune, then cluster, then QAT). "
            f"Received: path={path!r}"
        )
    if getattr(layer, "lora_enabled", False) or layer.dtype_policy.quantization_mode:
        raise UserError(
            f"Cannot cluster '{path}': its layer has LoRA or is quantized "
            f"({layer.dtype_policy.name}). Merge LoRA or start from the float "
            f"model. Received: path={path!r}"
        )
    if not np.issubdtype(np.dtype(variable.dtype), np.floating):
        raise UserError(
            f"Only float weights can be clustered; '{path}' is {variable.dtype}. "
            f"Received: dtype={variable.dtype!r}"
        )
    return layer


def _attribute(variable, layer):
    if isinstance(layer, keras.layers.Dense | keras.layers.EinsumDense):
        return "kernel" if getattr(layer, "_kernel", None) is variable else None
    if isinstance(layer, keras.layers.Embedding):
        return "embeddings" if getattr(layer, "_embeddings", None) is variable else None
    return None


def _plan(variable, layer, num_clusters, init, per_channel, preserve_sparsity, rng):
    """Checks one weight and computes its centroids, indices and mask (NumPy)."""
    axes = input_axes(variable, layer)
    values = ops.convert_to_numpy(variable)
    view = to_matrix(values, axes)  # (in, out)
    if per_channel:
        groups = [(f" (output channel {j})", view[:, j]) for j in range(view.shape[1])]
    else:
        groups = [("", view.ravel())]
    centroids = np.stack(
        [
            _centroids_of(
                variable.path, where, group, num_clusters, init, rng, preserve_sparsity
            )
            for where, group in groups
        ]
    ).astype(values.dtype)  # (groups, k)
    centroids = centroids if per_channel else centroids[0]
    indices = _centroids.assign(view, centroids)
    indices = from_matrix(indices, values.shape, axes)
    mask = (values != 0).astype(values.dtype) if preserve_sparsity else None
    if mask is not None and mask.all():
        mask = None  # nothing to preserve
    _warn_empty(variable.path, indices, mask, centroids.size, init)
    return variable, layer, axes, centroids, indices, mask


def _warn_empty(path, indices, mask, size, init):
    members = indices if mask is None else indices[mask != 0]
    empty = int(np.sum(np.bincount(members.ravel(), minlength=size) == 0))
    if empty:
        warnings.warn(
            f"'{path}' starts with {empty} empty cluster(s) ({init} init): it "
            "will hold fewer distinct values than `num_clusters`. Use "
            "init='kmeans++' or 'density', or fewer clusters.",
            stacklevel=4,
        )


def _centroids_of(path, where, group, num_clusters, init, rng, nonzero=False):
    if group.size < num_clusters:
        raise UserError(
            f"`num_clusters`={num_clusters} is larger than the {group.size} "
            f"weights of '{path}'{where}. Use fewer clusters or leave it out of "
            f"`targets`. Received: num_clusters={num_clusters}, path={path!r}"
        )
    values = group[group != 0] if nonzero else group
    if values.size < num_clusters:
        raise UserError(
            f"'{path}'{where} has {values.size} non-zero weights, too few for "
            f"{num_clusters} clusters (preserve_sparsity keeps zeros out of the "
            "clusters). Use fewer clusters or prune it less. "
            f"Received: num_clusters={num_clusters}, path={path!r}"
        )
    centroids = _centroids.initial_centroids(
        values, num_clusters, init, rng, sparse=nonzero
    )
    distinct = counts.distinct(centroids.astype(group.dtype))
    if distinct < num_clusters:
        raise UserError(
            f"'{path}'{where} gives only {distinct} distinct {init} centroids for "
            f"{num_clusters} clusters: too few distinct weights. Use fewer "
            f"clusters. Received: num_clusters={num_clusters}, init={init!r}, "
            f"path={path!r}"
        )
    return centroids


def _apply(variable, layer, axes, centroids, indices, mask):
    """Adds the clustering variables to `layer` and swaps its class."""
    attribute = _attribute(variable, layer)
    with unlocked(layer):
        record = _state.ClusteredWeight(
            variable=variable,
            layer=layer,
            attribute=attribute,
            input_axes=axes,
            centroids=_add(layer, "cluster_centroids", centroids, trainable=True),
            anchors=_add(layer, "cluster_anchors", centroids),
            indices=_add(layer, "cluster_indices", indices),
            mask=None if mask is None else _add(layer, "cluster_mask", mask),
            original_class=type(layer),
            original_trainable=variable.trainable,
        )
    variable.trainable = False  # the centroids train instead
    object.__setattr__(layer, _state.LAYER_ATTRIBUTE, record)
    object.__setattr__(
        layer, "__class__", _state.clustered_class(type(layer), attribute)
    )
    return record


def _add(layer, name, value, trainable=False):
    # Trainable centroids follow the kernel's replica aggregation (gradients
    # are all-reduced); anchors, indices and the mask are written on the
    # host, in cross-replica context, with the same value for every replica.
    variable = layer.add_weight(
        shape=value.shape,
        initializer="zeros",
        dtype=str(value.dtype),
        trainable=trainable,
        autocast=value.dtype.kind == "f",
        aggregation="none" if trainable else "only_first_replica",
        name=name,
    )
    variable.assign(value)
    return variable
