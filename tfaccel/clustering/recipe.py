"""Applies a `weight_clustering` recipe modifier to a model."""

from tfaccel.clustering.cluster import cluster


def apply_modifier(model, modifier, context):
    """Clusters `model` as a recipe's `weight_clustering` modifier says.

    `update_freq` is already in optimizer steps (or `"epoch"`), so the
    stage's step count does not change it.

    Args:
        model: a built Keras model; changed in place.
        modifier: a config with `targets`, `num_clusters`, `init`,
            `per_channel`, `preserve_sparsity`, `update_freq` and `seed`.
        context: a `tfaccel.recipe.context.StageContext` (unused: the
            schedule is in steps already).

    Returns:
        `model`, clustered; compile it, then fit with `tfaccel.callbacks(model)`.

    Example:

    ```python
    model = apply_modifier(model, recipe.stages[1].modifiers[0], StageContext(500))
    ```
    """
    del context
    return cluster(
        model,
        list(modifier.targets),
        modifier.num_clusters,
        init=modifier.init,
        per_channel=modifier.per_channel,
        preserve_sparsity=modifier.preserve_sparsity,
        update_freq=modifier.update_freq,
        seed=modifier.seed,
    )
