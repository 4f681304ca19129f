"""Run progress lines and their estimate of the time left."""

import keras
import numpy as np

from tfaccel.recipe.progress import RunProgress


def test_estimate_counts_restored_epochs_as_done():
    lines = []
    progress = RunProgress(6, lines.append)
    assert progress.seconds_left() is None
    progress.skip(2)  # restored from a checkpoint: not timed
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 3), "float32")
    model.fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[progress.callback("prune")])
    assert progress.done == 4 and len(progress.timed) == 2
    assert progress.seconds_left() == 2 * sum(progress.timed) / 2
    assert lines[0].startswith("Progress: 3/6 training epochs (prune epoch 1); about ")
    assert lines[1].startswith("Progress: 4/6 training epochs (prune epoch 2); about ")
    assert lines[1].endswith("min of training left")
