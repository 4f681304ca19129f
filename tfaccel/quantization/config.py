"""`QATConfig`: what quantization-aware training simulates."""

import dataclasses

from tfaccel.errors import UserError

WEIGHT_BITS = range(2, 9)  # fake-quant grids that int8 kernels can hold
ACTIVATION_BITS = (8,)  # TFLite's integer kernels take int8 activations


@dataclasses.dataclass(frozen=True)
class QATConfig:
    """Settings of `tfaccel.quantize_aware`.

    Weights are quantized symmetrically onto `[-(2^(b-1) - 1), 2^(b-1) - 1]`
    (zero stays exactly zero, so pruned weights stay pruned), per output
    channel or per tensor. Activations are quantized asymmetrically onto
    `[0, 2^b - 1]` over a range tracked as a moving average of each batch's
    min and max, as TFLite's int8 kernels expect.

    Args:
        weight_bits: int in [2, 8]. Below 8 the weights take fewer levels but
            still export as int8 kernels.
        activation_bits: 8, the width of TFLite's integer activations.
        per_channel: bool. One weight scale per output unit (`True`) or one
            per kernel.
        range_decay: float in [0, 1). Decay of the moving average of
            activation ranges; the first training batch sets the range.
        quantize_attention: bool. Also quantize the inputs of the attention
            score and value matmuls of a `MultiHeadAttention` whose query,
            key and value projections are all targeted.
        preserve_sparsity: bool. Keep every exact zero of a targeted weight at
            zero during training (prune-preserving QAT).

    Example:

    ```python
    config = tfaccel.QATConfig(weight_bits=8, activation_bits=8, per_channel=True)
    ```
    """

    weight_bits: int = 8
    activation_bits: int = 8
    per_channel: bool = True
    range_decay: float = 0.99
    quantize_attention: bool = True
    preserve_sparsity: bool = True

    def __post_init__(self):
        if not _is_int(self.weight_bits) or self.weight_bits not in WEIGHT_BITS:
            raise UserError(
                "`weight_bits` must be an integer from 2 to 8 (TFLite runs "
                f"int8 kernels). Received: weight_bits={self.weight_bits!r}"
            )
        if (
            not _is_int(self.activation_bits)
            or self.activation_bits not in ACTIVATION_BITS
        ):
            raise UserError(
                "`activation_bits` must be 8: TFLite's integer kernels take int8 "
                f"activations. Received: activation_bits={self.activation_bits!r}"
            )
        decay = self.range_decay
        if (
            isinstance(decay, bool)
            or not isinstance(decay, int | float)
            or not 0 <= decay < 1
        ):
            raise UserError(
                "`range_decay` must be a number in [0, 1). "
                f"Received: range_decay={decay!r}"
            )

    def get_config(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)
