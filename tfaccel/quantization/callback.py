"""The QAT callback: writes the tracked activation ranges to TensorBoard."""

import tensorflow as tf

from tfaccel.core.callbacks import TechniqueCallback
from tfaccel.errors import UserError
from tfaccel.quantization import _state


class QuantizationRanges(TechniqueCallback):
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

    def on_train_begin(self, logs=None):
        self._states = [s for _, s in _state.find_states(self.model) if not s.stripped]
        if not self._states:
            raise UserError(
                "QuantizationRanges found no quantization-aware layers; call "
                "tfaccel.quantize_aware(model, ...) first. "
                f"Received: model={self.model.name!r}"
            )

    def write_summaries(self, step):
        for state in self._states:
            for name, quantizer in state.ranges():
                low, high = quantizer.values()
                tf.summary.scalar(f"quantization/{name}/min", low, step)
                tf.summary.scalar(f"quantization/{name}/max", high, step)
