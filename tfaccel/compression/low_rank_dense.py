"""`LowRankDense`: a `Dense` layer whose kernel is two trainable factors."""

import keras
from keras import ops

from tfaccel.compression import _factors


@keras.saving.register_keras_serializable(package="tfaccel")
class LowRankDense(keras.layers.Dense):
    """A `Dense` layer that computes `activation((x @ A) @ B + bias)`.

    The `(in, units)` kernel is replaced by `kernel_a` `(in, rank)` and
    `kernel_b` `(rank, units)`, both trainable. `call` does two matmuls,
    `rank * (in + units)` multiply-accumulates per token instead of
    `in * units`, and never forms `A @ B`; the `kernel` property returns the
    product, for code that reads a kernel. `tfaccel.compression.factorize`
    turns a built `Dense` into one in place, with truncated-SVD factors.

    Args:
        units: int. Output width, as for `Dense`.
        rank: int >= 1. Inner width of the factors.
        **kwargs: the other arguments of `keras.layers.Dense`.

    Example:

    ```python
    layer = LowRankDense(64, rank=8)
    y = layer(np.ones((2, 128)))  # kernel_a (128, 8), kernel_b (8, 64)
    ```
    """

    def __init__(self, units, rank, **kwargs):
        super().__init__(units, **kwargs)
        _factors.check_rank(rank)
        self.rank = rank

    def build(self, input_shape):
        super().build(input_shape)
        _factors.add_factors(self, self.rank)

    @property
    def kernel(self):
        # The product, for readers of `layer.kernel`; `call` never forms it.
        return ops.matmul(self.kernel_a, self.kernel_b)

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, self.kernel_a)  # (..., rank)
        x = ops.matmul(x, self.kernel_b)  # (..., units)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def save_own_variables(self, store):
        # Every variable in order (Dense's own saving knows only its kernel).
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return {**super().get_config(), "rank": self.rank}
