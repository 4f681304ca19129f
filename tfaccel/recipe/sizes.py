"""What a run reports about a model's size: parameters, MACs, zeros."""

from tfaccel.core import counts
from tfaccel.core.targets import match_variables


def model_size(model):
    """Parameters (`tfaccel.core.counts`) and matmul MACs per token.

    MACs come from `tfaccel.compression.flops.kernel_macs`.
    """
    from tfaccel.compression import flops

    return {
        "parameters": int(counts.parameter_count(model)),
        "kernel_macs_per_token": int(flops.kernel_macs(model)),
    }


def recipe_sparsity(model, recipe):
    """Fraction of exact zeros in the recipe's pruning targets.

    Without a pruning modifier, over every kernel (`re:.*kernel`).
    """
    targets = [
        target
        for stage in recipe.stages
        for modifier in stage.modifiers
        if modifier.type == "magnitude_pruning"
        for target in modifier.targets
    ] or ["re:.*kernel"]
    return counts.total_sparsity(match_variables(model, targets))
