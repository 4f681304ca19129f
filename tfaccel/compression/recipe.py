"""Applies the `shrink` and `low_rank` recipe modifiers."""

from keras import ops


def apply_shrink(model, modifier, context):
    """Returns the shrunk model a recipe's `shrink` modifier asks for.

    Activation importance is scored on `calibration_examples` shuffled
    training examples of `task`.

    Args:
        model: a built `Seq2SeqTransformer` (or a supported keras-hub model).
        modifier: a config with `heads`, `ffn`, `layers`, `importance` and
            `calibration_examples`.
        context: a `tfaccel.recipe.context.StageContext`: its `task` gives
            the calibration data, its `log` the progress line.

    Returns:
        A new, smaller model with the kept weights.
    """
    from tfaccel.compression.flops import kernel_macs
    from tfaccel.compression.shrink import shrink
    from tfaccel.core.counts import parameter_count

    task, log = context.task, context.log
    layers = modifier.layers
    if layers is not None and not isinstance(layers, int | float):
        layers = {k: v for k, v in layers.model_dump().items() if v is not None}
    calibration = None
    if modifier.importance == "activation":
        calibration = calibration_batches(task, modifier.calibration_examples)
    shrunk = shrink(
        model,
        heads=modifier.heads,
        ffn=modifier.ffn,
        layers=layers,
        importance=modifier.importance,
        calibration=calibration,
    )
    before, after = kernel_macs(model), kernel_macs(shrunk)
    old, new = parameter_count(model), parameter_count(shrunk)
    log(
        f"Shrunk: {old:,} -> {new:,} parameters, "
        f"{before:,} -> {after:,} matmul MACs per token ({after / before:.1%})"
    )
    return shrunk


def apply_low_rank(model, modifier, context):
    """Factorizes `model`'s targeted kernels in place, as a `low_rank` modifier says.

    Args:
        model: a built Keras model.
        modifier: a config with `targets`, `rank` and `energy`.
        context: a `tfaccel.recipe.context.StageContext` (unused).

    Returns:
        `model`, with factorized kernels.
    """
    from tfaccel.compression.factorize import factorize

    del context
    return factorize(
        model, list(modifier.targets), rank=modifier.rank, energy=modifier.energy
    )


def calibration_batches(task, examples, batch_size=128, seed=0):
    """Returns a list of model input dicts holding about `examples` training pairs."""
    data = task.dataset("train", batch_size, shuffle=True, seed=seed)
    batches, count = [], 0
    for inputs, _, _ in data:
        if count >= examples:
            break
        batches.append({k: ops.convert_to_numpy(v) for k, v in inputs.items()})
        count += len(batches[-1]["encoder_token_ids"])
    return batches
