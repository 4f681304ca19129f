"""The callback that drives pruning during `model.fit`."""

import tensorflow as tf
from keras import ops

from tfaccel.core import counts, registry
from tfaccel.core.callbacks import TechniqueCallback
from tfaccel.errors import UserError
from tfaccel.pruning import _state


class UpdatePruningStep(TechniqueCallback):
    """Sets the pruning step and updates masks when the schedule says so.

    Before each training batch it sets the pruning step of every model that
    `tfaccel.prune` changed (the fitted model or a layer nested in it) to the
    optimizer's iteration count. If the schedule updates masks at a step
    since the last batch (with `steps_per_execution > 1` the callback sees
    every k-th step), masks are recomputed from the current weights, on the
    host and in cross-replica context, so every replica gets the same mask.
    The masks of kernels clustered since (`tfaccel.cluster`) stay fixed.
    Without this callback, training stops with an error that names it.

    Args:
        log_dir: None, or a folder for TensorBoard: at each epoch end, the
            measured sparsity (fraction of exact zeros) of every target is
            written as `pruning/<variable path>`, and the total as
            `pruning/total`.

    Example:

    ```python
    model.fit(ds, epochs=4, callbacks=[UpdatePruningStep(log_dir="logs")])
    ```
    """

    def on_train_begin(self, logs=None):
        self._states = [state for _, state in _state.find_states(self.model)]
        if not self._states:
            raise UserError(
                "UpdatePruningStep found no pruned variables; call "
                f"tfaccel.prune(model, ...) first. Received: model={self.model.name!r}"
            )
        # A kernel clustered after pruning is frozen and read through its
        # centroids: its mask stays the one clustering preserved, or strip
        # would zero weights that the clustered model used.
        self._frozen = {id(v) for v in registry.frozen_variables(self.model)}

    def on_train_batch_begin(self, batch, logs=None):
        step = self.optimizer_step()
        for state in self._states:
            state.advance(step, self._frozen)

    def write_summaries(self, step):
        zeros = total = 0
        for state in self._states:
            for target in state.targets:
                weights = ops.convert_to_numpy(target.variable)
                zeros += counts.zeros(weights)
                total += weights.size
                sparsity = counts.sparsity(weights)
                tf.summary.scalar(f"pruning/{target.variable.path}", sparsity, step)
        tf.summary.scalar("pruning/total", counts.ratio(zeros, total), step)

    def on_train_end(self, logs=None):
        # A mask update due at the step after the last batch (a schedule
        # that ends with the last epoch) is made now, so that training ends
        # at the sparsity the schedule reaches there.
        step = self.optimizer_step()
        for state in self._states:
            state.advance(step, self._frozen)
        super().on_train_end(logs)
