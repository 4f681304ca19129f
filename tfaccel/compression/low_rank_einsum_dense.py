"""`LowRankEinsumDense`: an `EinsumDense` whose kernel is two trainable factors."""

import keras
from keras import ops

from tfaccel.compression import _factors


@keras.saving.register_keras_serializable(package="tfaccel")
class LowRankEinsumDense(keras.layers.EinsumDense):
    """An `EinsumDense` layer whose kernel is `kernel_a @ kernel_b`.

    The kernel is factorized in its `(in, out)` view (contracted axes, then
    output axes): `kernel_a` keeps the contracted axes and adds the rank,
    `kernel_b` starts with the rank and keeps the output axes. For a
    keras-hub attention query, `"abc,cde->abde"` with kernel
    `(hidden, heads, head_dim)`, the factors are `(hidden, rank)` and
    `(rank, heads, head_dim)`, and `call` runs `"abc,cz->abz"` then
    `"abz,zde->abde"`: `rank * (in + out)` multiply-accumulates per token
    instead of `in * out`. The `kernel` property returns the product, for
    code that reads a kernel; `call` never forms it.
    `tfaccel.compression.factorize` turns a built `EinsumDense` into one in
    place, with truncated-SVD factors.

    Args:
        equation: str. The einsum equation, as for `EinsumDense`. Every
            kernel axis must be either contracted or in the output.
        output_shape: the output shape, as for `EinsumDense`.
        rank: int >= 1. Inner width of the factors.
        **kwargs: the other arguments of `keras.layers.EinsumDense`.

    Example:

    ```python
    layer = LowRankEinsumDense("abc,cde->abde", (None, 4, 16), rank=8)
    y = layer(np.ones((2, 5, 64)))  # kernel_a (64, 8), kernel_b (8, 4, 16)
    ```
    """

    def __init__(self, equation, output_shape, rank, **kwargs):
        super().__init__(equation, output_shape, **kwargs)
        _factors.check_rank(rank)
        self.rank = rank

    def build(self, input_shape):
        super().build(input_shape)
        _factors.add_factors(self, self.rank)

    @property
    def kernel(self):
        # The product, for readers of `layer.kernel`; `call` never forms it.
        _, _, product = _factors.equations(self.equation)
        return ops.einsum(product, self.kernel_a, self.kernel_b)

    def call(self, inputs, training=None):
        first, second, _ = _factors.equations(self.equation)
        x = ops.einsum(first, inputs, self.kernel_a)  # (..., rank)
        x = ops.einsum(second, x, self.kernel_b)  # the original output
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def save_own_variables(self, store):
        # Every variable in order (EinsumDense's own saving knows only its
        # kernel and bias).
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return {**super().get_config(), "rank": self.rank}
