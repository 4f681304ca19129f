"""Applies a `quantization_aware` recipe modifier to a model."""

from tfaccel.quantization.config import QATConfig
from tfaccel.quantization.quantize_aware import quantize_aware


def apply_modifier(model, modifier, context):
    """Makes `model` quantization-aware as a recipe modifier says.

    Args:
        model: a built Keras model; changed in place.
        modifier: a `tfaccel.recipe.modifiers.QuantizationAware`.
        context: a `tfaccel.recipe.context.StageContext` (unused: QAT has
            no schedule).

    Returns:
        `model`, ready for `model.fit(..., callbacks=tfaccel.callbacks(model))`.
    """
    del context
    config = QATConfig(
        weight_bits=modifier.weight_bits,
        activation_bits=modifier.activation_bits,
        per_channel=modifier.per_channel,
        range_decay=modifier.range_decay,
        quantize_attention=modifier.quantize_attention,
        preserve_sparsity=modifier.preserve_sparsity,
    )
    return quantize_aware(model, targets=modifier.targets, config=config)
