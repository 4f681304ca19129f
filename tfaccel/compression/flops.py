"""The sizes that compression reports quote: matmul MACs per token and parameters.

`kernel_macs` counts the multiply-accumulates of every `Dense` and
`EinsumDense` kernel for one token: the number of kernel weights each token
is multiplied by. A plain kernel costs `in * out` (its size); a factorized
one (`LowRankDense`, `LowRankEinsumDense`) `rank * (in + out)`, the sizes of
its two factors. Every kernel counts once, as if each layer saw one token:
the attention projections, the feedforward layers and the `lm_head`
included. Not counted: embedding lookups (and a tied output projection
through an embedding table, as BART's), biases, layer norms, activations,
and the attention score and value products, whose cost grows with the
sequence length rather than with the weights.

`parameter_count` is `tfaccel.core.counts.parameter_count`, kept here
(and in `tfaccel.compression`) under its old name.
"""

import keras

from tfaccel.compression.factorized_model import LOW_RANK_CLASSES
from tfaccel.core.counts import parameter_count, size

__all__ = ["kernel_macs", "parameter_count"]


def kernel_macs(model):
    """Returns the matmul multiply-accumulates per token of `model`'s kernels.

    Args:
        model: a built Keras model.

    Returns:
        An int: the sum over Dense and EinsumDense layers (nested ones
        included, each layer once) of `in * out`, or `rank * (in + out)` for
        a factorized kernel.

    Example:

    ```python
    kernel_macs(Seq2SeqTransformer.from_preset("tiny"))  # 11008
    ```
    """
    low_rank = tuple(LOW_RANK_CLASSES.values())
    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, low_rank):
            total += size(layer.kernel_a) + size(layer.kernel_b)
        elif isinstance(layer, keras.layers.Dense | keras.layers.EinsumDense):
            total += size(getattr(layer, "_kernel", None))
    return total
