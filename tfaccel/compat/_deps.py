"""Lazy imports of tf_keras and tfmot, the only place tfaccel loads them.

tfmot 0.8 sets `TF_USE_LEGACY_KERAS=1` in `os.environ` when it is imported
(`tensorflow_model_optimization/python/core/keras/compat.py`). That would
make `tf.keras` resolve to Keras 2 for the rest of the process wherever it is
first touched afterwards, so the variable is put back as it was, and
`tf.keras` is resolved once beforehand (to Keras 3, as TensorFlow 2.21 does
by default). tfmot then finds Keras 3 behind `tf.keras` and imports
`tf_keras` itself, which is the Keras it needs.
"""

import contextlib
import os

from tfaccel.errors import missing_extra

_LEGACY = "TF_USE_LEGACY_KERAS"


def tf_keras():
    """Returns the `tf_keras` module (Keras 2), or raises naming the pip extra."""
    try:
        import tf_keras as module
    except ImportError as error:
        raise missing_extra("tf_keras", "tfmot") from error
    return module


def tfmot():
    """Returns `tensorflow_model_optimization`, leaving `TF_USE_LEGACY_KERAS` be."""
    tf_keras()
    with _environment_kept():
        try:
            import tensorflow as tf

            tf.keras  # noqa: B018 (resolve the lazy alias before tfmot does)
            import tensorflow_model_optimization as module
        except ImportError as error:
            raise missing_extra("tensorflow_model_optimization", "tfmot") from error
    return module


@contextlib.contextmanager
def _environment_kept():
    before = os.environ.get(_LEGACY)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_LEGACY, None)
        else:
            os.environ[_LEGACY] = before
