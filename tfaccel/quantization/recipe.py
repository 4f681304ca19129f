"""Applies a `quantization_aware` recipe modifier to a model."""

from tfaccel.quantization.config import QATConfig
from tfaccel.quantization.quantize_aware import quantize_aware


def apply_modifier(model, modifier, steps_per_epoch, initial_step=0):
    """Makes `model` quantization-aware as a recipe modifier says.

    Args:
        model: a built Keras model; changed in place.
        modifier: a `tfaccel.recipe.modifiers.QuantizationAware`.
        steps_per_epoch: unused (QAT has no schedule); kept for the runner's
            common signature.
        initial_step: unused, as `steps_per_epoch`.

    Returns:
        `model`, ready for `model.fit(..., callbacks=tfaccel.callbacks(model))`.
    """
    del steps_per_epoch, initial_step
    config = QATConfig(
        weight_bits=modifier.weight_bits,
        activation_bits=modifier.activation_bits,
        per_channel=modifier.per_channel,
        range_decay=modifier.range_decay,
        quantize_attention=modifier.quantize_attention,
        preserve_sparsity=modifier.preserve_sparsity,
    )
    return quantize_aware(model, targets=modifier.targets, config=config)
