"""The QAT callback: writes the tracked activation ranges to TensorBoard."""

import keras
import tensorflow as tf
from keras import ops

from tfaccel.errors import UserError
from tfaccel.quantization import _state


class QuantizationRanges(keras.callbacks.Callback):
    """Reports the activation ranges that QAT tracks during `model.fit`.

    The ranges themselves are updated in the training graph (a moving
    average of each batch's min and max, see `QATConfig.range_decay`), so
    QAT trains correctly without this callback; it makes the ranges visible.
    At each epoch end it writes `quantization/<layer path>/<tensor>/min` and
    `.../max` for every tracked tensor to TensorBoard.

    Args:
        log_dir: None, or a TensorBoard folder. With None the callback only
            checks, at the start of training, that the model has QAT.

    Example:

    ```python
    model.fit(ds, callbacks=[QuantizationRanges(log_dir="logs")])
    ```
    """

    def __init__(self, log_dir=None):
        super().__init__()
        self.log_dir = log_dir
        self._states = []
        self._writer = None

    def on_train_begin(self, logs=None):
        self._states = [s for _, s in _state.find_states(self.model) if not s.stripped]
        if not self._states:
            raise UserError(
                "QuantizationRanges found no quantization-aware layers; call "
                "tfaccel.quantize_aware(model, ...) first. "
                f"Received: model={self.model.name!r}"
            )

    def on_epoch_end(self, epoch, logs=None):
        if self.log_dir is None:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        with self._writer.as_default():
            for state in self._states:
                for name, quantizer in state.ranges():
                    low, high = quantizer.values()
                    tf.summary.scalar(f"quantization/{name}/min", low, step)
                    tf.summary.scalar(f"quantization/{name}/max", high, step)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
