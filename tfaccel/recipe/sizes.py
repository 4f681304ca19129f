"""What a run reports about a model's size: parameters, MACs, zeros."""


def model_size(model):
    """Parameters and matmul MACs per token (`tfaccel.compression.flops`)."""
    from tfaccel.compression import flops

    return {
        "parameters": int(flops.parameter_count(model)),
        "kernel_macs_per_token": int(flops.kernel_macs(model)),
    }


def recipe_sparsity(model, recipe):
    """Fraction of exact zeros in the recipe's pruning targets.

    Without a pruning modifier, over every kernel (`re:.*kernel`).
    """
    from tfaccel.pruning.prune import match_variables

    targets = [
        target
        for stage in recipe.stages
        for modifier in stage.modifiers
        if modifier.type == "magnitude_pruning"
        for target in modifier.targets
    ] or ["re:.*kernel"]
    zeros = total = 0
    for variable in match_variables(model, targets):
        values = variable.numpy()
        zeros += int((values == 0).sum())
        total += values.size
    return zeros / max(total, 1)
