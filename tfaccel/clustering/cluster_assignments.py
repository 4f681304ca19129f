"""The callback that refreshes cluster assignments during `model.fit`."""

import tensorflow as tf

from tfaccel.clustering import _state
from tfaccel.core.callbacks import TechniqueCallback
from tfaccel.errors import UserError


class ClusterAssignments(TechniqueCallback):
    """Moves each clustered weight to its nearest centroid on a schedule.

    The centroids train in the graph; this callback refreshes, on the host,
    which centroid each weight uses: before the batch of every
    `update_freq`-th optimizer step, or at each epoch end with
    `update_freq="epoch"` (both set by `tfaccel.cluster`). Each weight of
    the original kernel first moves by as much as its centroid moved since
    the last refresh, then joins its nearest centroid. Assignments are
    written in cross-replica context, so every replica gets the same.
    Without this callback the centroids still train, but weights never
    change cluster. It also checks that the optimizer was built after
    clustering (it must train the centroids).

    Args:
        log_dir: None, or a TensorBoard folder: at each epoch end, the
            fraction of weights that changed cluster at the last refresh is
            written as `clustering/<variable path>/reassigned`.

    Example:

    ```python
    model.fit(ds, epochs=2, callbacks=[ClusterAssignments(log_dir="logs")])
    ```
    """

    def on_train_begin(self, logs=None):
        self._states = [state for _, state in _state.find_states(self.model)]
        if not self._states:
            raise UserError(
                "ClusterAssignments found no clustered weights; call "
                "tfaccel.cluster(model, ...) first. "
                f"Received: model={self.model.name!r}"
            )
        _check_optimizer(self.model, self._states)

    def on_train_batch_begin(self, batch, logs=None):
        step = self.optimizer_step()
        for state in self._states:
            state.advance(step)

    def on_epoch_end(self, epoch, logs=None):
        for state in self._states:
            if state.update_freq == "epoch":
                state.refresh()
        super().on_epoch_end(epoch, logs)

    def write_summaries(self, step):
        for state in self._states:
            for record in state.weights:
                name = f"clustering/{record.variable.path}/reassigned"
                tf.summary.scalar(name, record.reassigned, step)


def _check_optimizer(model, states):
    # Keras's own error ("Unknown variable ... cluster_centroids") comes at
    # the first step and does not say that clustering caused it.
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not optimizer.built:
        return
    known = {id(v) for v in getattr(optimizer, "_trainable_variables", ())}
    for state in states:
        for record in state.weights:
            if known and id(record.centroids) not in known:
                raise UserError(
                    f"The optimizer of '{model.name}' was built before "
                    "tfaccel.cluster added the centroids; call model.compile() "
                    "again after clustering. "
                    f"Received: variable={record.centroids.path!r}"
                )
