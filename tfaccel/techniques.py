"""Functions over every technique applied to a model: callbacks and strip.

Each technique keeps its own state beside the model; these functions find
what was applied and call that technique's part: pruning, then clustering,
then QAT.
"""

from tfaccel.clustering import _state as _cluster_state
from tfaccel.clustering.cluster_assignments import ClusterAssignments
from tfaccel.clustering.strip import strip_clustering
from tfaccel.pruning import _state
from tfaccel.pruning.strip import strip_pruning
from tfaccel.pruning.update_pruning_step import UpdatePruningStep
from tfaccel.quantization import _state as _qat_state
from tfaccel.quantization.callback import QuantizationRanges
from tfaccel.quantization.strip import strip_quantization


def callbacks(model, log_dir=None):
    """Returns the callbacks that `model.fit` needs for what `model` carries.

    Args:
        model: a Keras model changed by `tfaccel.prune`, `tfaccel.cluster`
            or `tfaccel.quantize_aware` (or one holding such a model as a
            layer).
        log_dir: None, or a TensorBoard folder for per-layer statistics.

    Returns:
        A list of `keras.callbacks.Callback`; empty for a plain model.

    Example:

    ```python
    model.fit(ds, epochs=4, callbacks=tfaccel.callbacks(model))
    ```
    """
    found = []
    if _state.find_states(model):
        found.append(UpdatePruningStep(log_dir=log_dir))
    if _cluster_state.find_states(model):
        found.append(ClusterAssignments(log_dir=log_dir))
    if any(not state.stripped for _, state in _qat_state.find_states(model)):
        found.append(QuantizationRanges(log_dir=log_dir))
    return found


def strip(model):
    """Removes every technique's training-only state; keeps its effect.

    The model is changed in place and returned: pruned weights keep their
    zeros, clustered kernels hold their shared values as plain weights, and
    the model saves and loads as a plain Keras model. QAT
    weights are baked onto the int8 grid and its activation ranges frozen,
    ready for TFLite conversion (`tfaccel.quantization.strip_quantization`).

    Args:
        model: a Keras model changed by `tfaccel.prune`, `tfaccel.cluster`
            and/or `tfaccel.quantize_aware`.

    Returns:
        `model` itself, with no tfaccel training state.

    Example:

    ```python
    model = tfaccel.strip(model)
    model.save("model.keras")
    ```
    """
    # Clustering first: it writes the shared values into the kernels, which
    # QAT's strip then rounds onto the int8 grid (QAT trained through the
    # clustered weights). Then in the reverse order of application: QAT's
    # strip puts back the constraint it found, pruning's the one before.
    return strip_pruning(strip_quantization(strip_clustering(model)))
