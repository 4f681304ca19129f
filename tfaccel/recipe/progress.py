"""Progress lines with an estimate of the training time left, and a stop
for training that diverges."""

import math
import time

import keras

from tfaccel.errors import DivergedError


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `fit` at the first batch whose loss is not finite.

    Keras's `TerminateOnNaN` ends training quietly, and what follows (an
    evaluation, a publish) would go on with NaN weights; this raises
    `DivergedError` instead, with one line that says where.

    Args:
        what: what is trained, for the message ("stage 'prune'").
    """

    def __init__(self, what):
        super().__init__()
        self.what = what

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        raise DivergedError(
            f"Training of {self.what} diverged: the loss is {float(loss)} at "
            f"optimizer step {step}, so nothing is published. Lower the learning "
            f"rate or check the data. Received: loss={float(loss)}"
        )


class RunProgress:
    """Counts the training epochs of a run and estimates the time left.

    The estimate is the mean time of the epochs this process trained,
    times the epochs still to train (in every stage of a recipe).

    Args:
        total_epochs: epochs the whole run trains.
        log: callable for progress lines.

    Example:

    ```python
    progress = RunProgress(10, print)
    model.fit(ds, epochs=10, callbacks=[progress.callback("baseline")])
    ```
    """

    def __init__(self, total_epochs, log=print):
        self.total = total_epochs
        self.log = log
        self.done = 0
        self.timed = []

    def skip(self, epochs):
        """Counts epochs that were restored from checkpoints, not trained."""
        self.done += epochs

    def seconds_left(self):
        """Returns the estimated training seconds left, or None before any epoch."""
        if not self.timed:
            return None
        return (self.total - self.done) * sum(self.timed) / len(self.timed)

    def callback(self, name):
        """Returns a Keras callback that logs after each epoch of `name`."""
        return _EpochTimer(self, name)


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self, progress, name):
        super().__init__()
        self.progress = progress
        self.name = name
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        progress = self.progress
        progress.timed.append(time.perf_counter() - self._start)
        progress.done += 1
        progress.log(
            f"Progress: {progress.done}/{progress.total} training epochs "
            f"({self.name} epoch {epoch + 1}); about "
            f"{progress.seconds_left() / 60:.0f} min of training left"
        )
