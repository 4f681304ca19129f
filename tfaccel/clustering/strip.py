"""`strip_clustering`: bakes the clustered weights and removes the state."""

from keras import ops

from tfaccel.clustering import _state
from tfaccel.core import saving
from tfaccel.core.compiled import forget_compiled
from tfaccel.core.optimizer import follow_variables


def strip_clustering(model):
    """Writes each clustered weight into its variable and removes clustering.

    Every clustered kernel (or embedding table) gets the value the layer has
    been reading, `gather(centroids, indices) * mask`, so the model computes
    exactly what it computed before strip. Each layer gets back its original
    class, its weight's trainable flag and its variable list (the
    centroids, anchors, indices and mask are untracked). The result is the
    same plain Keras model object holding `num_clusters` distinct values
    per kernel (per output channel with `per_channel`), plus 0 where
    sparsity was preserved; it saves and loads with `keras.saving` with no
    tfaccel objects (with its optimizer, whose slots now follow the
    kernels), and `tfaccel.quantize_aware` can follow. A model that
    is not clustered is returned unchanged.

    Args:
        model: a model changed by `tfaccel.cluster`.

    Returns:
        `model` itself (it is changed in place).

    Example:

    ```python
    model = tfaccel.clustering.strip_clustering(model)
    model.save("clustered.keras")
    ```
    """
    states = _state.find_states(model)
    for layer, state in states:
        for record in state.weights:
            _strip_weight(record)
        object.__delattr__(layer, _state.ATTRIBUTE)
        forget_compiled(layer)
    # The optimizer had slots for the centroids, not for the kernels that
    # train again: rebuild it, or `model.save` writes slots it cannot load.
    follow_variables(model)
    for layer, _ in states:
        saving.release(layer)
    return model


def _strip_weight(record):
    layer = record.layer
    record.variable.assign(ops.convert_to_numpy(record.weight()))
    object.__setattr__(layer, "__class__", record.original_class)
    object.__delattr__(layer, _state.LAYER_ATTRIBUTE)
    for variable in (record.centroids, record.anchors, record.indices, record.mask):
        if variable is not None:
            layer._untrack_variable(variable)
    record.variable.trainable = record.original_trainable
