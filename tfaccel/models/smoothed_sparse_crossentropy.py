"""Sparse cross-entropy with label smoothing, for sequence training."""

import keras


@keras.saving.register_keras_serializable(package="tfaccel")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy from logits and integer labels, with label smoothing.

    Keras's sparse cross-entropy has no label smoothing; this one-hots the
    labels on the fly. Reduced over the sample weights (non-padding tokens).

    Args:
        label_smoothing: float in [0, 1).
    """

    def __init__(self, label_smoothing=0.1, name="smoothed_sparse_crossentropy"):
        super().__init__(name=name, reduction="mean_with_sample_weight")
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        vocab = keras.ops.shape(y_pred)[-1]
        one_hot = keras.ops.one_hot(keras.ops.cast(y_true, "int32"), vocab)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {"label_smoothing": self.label_smoothing, "name": self.name}
