"""Fake quantization of weights and activations, with straight-through gradients.

Both use TensorFlow's `FakeQuantWithMinMaxVars*` ops (through
`keras.quantizers.fake_quant_with_min_max_vars`), which the TFLite converter
turns into quantization parameters. Their gradient is the straight-through
estimator: 1 inside the range, 0 outside.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

_TINY = 1e-8  # range floor: an all-zero channel still has a valid scale


def weight_scale_shape(shape, input_axes, per_channel):
    """Shape of the max-|w| tensor: one value per output unit, or one."""
    if not per_channel:
        return ()
    return tuple(d for i, d in enumerate(shape) if i not in input_axes)


def quantize_weight(weight, input_axes, bits, per_channel):
    """Fake-quantizes a kernel symmetrically onto `2^(bits-1) - 1` levels a side.

    Per channel, there is one scale per output unit (every axis that is not an
    input axis); the grid is `max|w| / (2^(bits-1) - 1)`, the same scale
    TFLite's converter derives from the baked weights, so a kernel on this
    grid converts to int8 with no further rounding.

    Args:
        weight: the kernel tensor.
        input_axes: tuple of its contracted axes.
        bits: int, weight bits.
        per_channel: bool.

    Returns:
        The kernel, rounded onto the grid, of the same shape and dtype.
    """
    rank = len(weight.shape)
    if not per_channel:
        limit = tf.stop_gradient(ops.maximum(ops.max(ops.abs(weight)), _TINY))
        return _fake_quant(weight, -limit, limit, bits, narrow_range=True)
    # Move the input axes first and flatten the output axes into one channel
    # axis, which TensorFlow's per-channel op wants last.
    outputs = [i for i in range(rank) if i not in input_axes]
    order = list(input_axes) + outputs
    moved = ops.transpose(weight, order) if order != list(range(rank)) else weight
    in_size = int(np.prod([weight.shape[i] for i in input_axes]))
    flat = ops.reshape(moved, (in_size, -1))
    limit = tf.stop_gradient(ops.maximum(ops.max(ops.abs(flat), axis=0), _TINY))
    quantized = keras.quantizers.fake_quant_with_min_max_vars(
        flat, -limit, limit, num_bits=bits, narrow_range=True, axis=-1
    )
    quantized = ops.reshape(quantized, ops.shape(moved))
    if order == list(range(rank)):
        return quantized
    return ops.transpose(quantized, list(np.argsort(order)))


def _fake_quant(x, low, high, bits, narrow_range=False):
    return keras.quantizers.fake_quant_with_min_max_vars(
        x, low, high, num_bits=bits, narrow_range=narrow_range
    )


STAMP = "_tfaccel_quantized_by"


def stamp(tensor, quantizer):
    """Marks `tensor` as already quantized by `quantizer` (see `quantized_by`).

    A tensor must get one range only: TFLite cannot convert two different
    ranges on one tensor joined by a reshape. So a quantized layer whose
    input is the (stamped) output of another one does not quantize it again.
    Identity ops such as inference-time Dropout return the same tensor
    object, so the stamp survives them.
    """
    try:
        setattr(tensor, STAMP, quantizer)
    except AttributeError:  # tensor types that take no attributes
        pass
    return tensor


def quantized_by(tensor):
    """Returns the quantizer that stamped `tensor`, or None."""
    return getattr(tensor, STAMP, None)


def _max_over_replicas(strategy, value):
    return tf.reduce_max(tf.stack(strategy.experimental_local_results(value)), axis=0)


class ActivationRange:
    """An activation quantizer whose range follows a moving average.

    In training, each call folds the batch's min and max into the range
    (`range = decay * range + (1 - decay) * batch`; the first batch sets it)
    and quantizes with the updated range. Otherwise it quantizes with the
    stored range. The range always contains 0, so zero padding is exact.
    Under MirroredStrategy the replicas gather their batch min and max, so
    every replica folds in the global batch's, as one device would.
    """

    def __init__(self, name, bits, decay, low=-6.0, high=6.0):
        self.name = name
        self.bits = bits
        self.decay = decay
        self.low = keras.Variable(
            low,
            dtype="float32",
            trainable=False,
            aggregation="mean",
            name=f"{name}_min",
        )
        self.high = keras.Variable(
            high,
            dtype="float32",
            trainable=False,
            aggregation="mean",
            name=f"{name}_max",
        )
        self.count = keras.Variable(
            0,
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
            name=f"{name}_count",
        )
        self.frozen = None  # (low, high) floats once stripped

    def __call__(self, x, training=None, update=True):
        """Quantizes `x`; in training with `update`, folds it into the range first.

        `update=False` applies a range that another call site tracks (the
        same tensor seen again, e.g. a key read back from the cache).
        """
        if self.frozen is not None:
            low, high = self.frozen
        elif training and update:
            low, high = self._update(x)
        else:
            low, high = (
                ops.convert_to_tensor(self.low),
                ops.convert_to_tensor(self.high),
            )
        return _fake_quant(x, low, high, self.bits)

    def _update(self, x):
        values = ops.cast(tf.stop_gradient(x), "float32")
        batch_low = ops.minimum(ops.min(values), 0.0)
        batch_high = ops.maximum(ops.max(values), 0.0)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # The whole global batch's min and max, as one device would see
            # them. A merge call takes the max over the replicas' values;
            # `all_gather` would use collective ops, whose instance keys
            # clash between strategies in one process.
            extremes = context.merge_call(
                _max_over_replicas, args=(ops.stack([-batch_low, batch_high]),)
            )
            batch_low, batch_high = -extremes[0], extremes[1]
        first = ops.equal(ops.convert_to_tensor(self.count), 0)
        keep = ops.where(first, 0.0, self.decay)
        low = keep * self.low + (1.0 - keep) * batch_low
        high = keep * self.high + (1.0 - keep) * batch_high
        self.low.assign(low)
        self.high.assign(high)
        self.count.assign_add(1)
        return low, high

    def freeze(self):
        """Fixes the range to the current values; no variables are read after."""
        self.frozen = self.values()

    def values(self):
        """Returns `(low, high)` as floats."""
        if self.frozen is not None:
            return self.frozen
        return (
            float(ops.convert_to_numpy(self.low)),
            float(ops.convert_to_numpy(self.high)),
        )

    def set_values(self, low, high):
        """Sets a frozen range, as read back from a saved model."""
        self.frozen = (float(low), float(high))
