"""Functions over every technique applied to a model: callbacks and strip.

Each technique keeps its own state beside the model and registers itself in
`tfaccel.core.registry` when its package is imported; these functions ask
the registry what was applied and call that technique's part: callbacks in
the order techniques are applied (pruning, clustering, QAT), strips in each
technique's strip order (clustering, QAT, pruning).
"""

import importlib

from tfaccel.core import registry
from tfaccel.core.optimizer import follow_variables

# The technique packages; importing one registers it. A new technique adds
# its package here and registers itself in its `__init__`.
PACKAGES = (
    "tfaccel.pruning",
    "tfaccel.clustering",
    "tfaccel.quantization",
    "tfaccel.compression",
)


def load_techniques():
    """Imports every technique package, so that each one is registered."""
    for name in PACKAGES:
        importlib.import_module(name)


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
    load_techniques()
    return [
        technique.callback(log_dir=log_dir)
        for technique in registry.techniques()
        if technique.callback is not None and technique.is_training(model)
    ]


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
    load_techniques()
    for technique in registry.strip_sequence():
        model = technique.strip(model)
    # A compiled model keeps training and saving with its optimizer: its
    # slots must be those of the variables left.
    follow_variables(model)
    return model
