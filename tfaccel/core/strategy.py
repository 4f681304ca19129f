"""The distribution strategy that a technique's new variables are made under."""

import tensorflow as tf


def model_strategy(model):
    """Returns the strategy to create variables that live beside `model`'s.

    Inside a strategy scope that strategy; otherwise the one that built the
    model (`model.distribute_strategy`), so masks, centroids, ranges and
    factors are mirrored like the weights they belong to.

    Example:

    ```python
    with model_strategy(model).scope():
        mask = keras.Variable(np.ones(shape), trainable=False)
    ```
    """
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy()
    return model.distribute_strategy
