"""The base of techniques' callbacks: the step and the TensorBoard writer."""

import keras
import tensorflow as tf
from keras import ops


class TechniqueCallback(keras.callbacks.Callback):
    """A callback that drives a technique and logs its statistics.

    It keeps `log_dir` and the technique's states (`self._states`, set by the
    subclass at `on_train_begin`). At each epoch end it opens a TensorBoard
    file writer in `log_dir` (once), writes what `write_summaries` writes at
    the optimizer step, and flushes; at the end of training it closes the
    writer. With `log_dir=None` nothing is written.

    Subclasses implement `write_summaries(step)` with `tf.summary` calls and
    call `super()` from the hooks they override.

    Args:
        log_dir: None, or a TensorBoard folder.
    """

    def __init__(self, log_dir=None):
        super().__init__()
        self.log_dir = log_dir
        self._states = []
        self._writer = None

    def optimizer_step(self):
        """Returns the optimizer's iteration count as a Python int."""
        return int(ops.convert_to_numpy(self.model.optimizer.iterations))

    def write_summaries(self, step):
        """Writes this technique's `tf.summary` scalars at `step`."""
        raise NotImplementedError

    def on_epoch_end(self, epoch, logs=None):
        if self.log_dir is None:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        step = self.optimizer_step()
        with self._writer.as_default():
            self.write_summaries(step)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
