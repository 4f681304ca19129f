"""Keeping a compiled model's optimizer in step with its trainable variables."""

import keras

from tfaccel.core.compiled import forget_compiled
from tfaccel.core.strategy import model_strategy


def follow_variables(model):
    """Rebuilds `model.optimizer` if its variables are no longer the model's.

    A strip can remove trainable variables (clustering's centroids) or
    replace them. The optimizer still holds one slot per old variable, so
    `model.save` wrote slots that `keras.saving.load_model` cannot assign
    ("The shape of the target variable ... must match"), and a further `fit`
    would update variables the model no longer uses. This gives the model a
    new optimizer of the same configuration, built on its current trainable
    variables, with the step count and the slots (momentum, velocity, ...)
    of every variable it kept; new variables start with fresh slots.

    Args:
        model: a Keras model, compiled or not; changed in place.

    Returns:
        True if the optimizer was rebuilt, False if there was nothing to do.
    """
    old = getattr(model, "optimizer", None)
    if old is None or not old.built:
        return False
    current = list(model.trainable_variables)
    tracked = list(old._trainable_variables)
    if [id(v) for v in tracked] == [id(v) for v in current]:
        return False
    # Under MirroredStrategy the slots are mirrored like the weights.
    with model_strategy(model).scope():
        new = keras.optimizers.deserialize(keras.optimizers.serialize(old))
        new.build(current)
        saved = {v.path: v for v in old.variables}
        for variable in new.variables:
            kept = saved.get(variable.path)
            if kept is not None and tuple(kept.shape) == tuple(variable.shape):
                variable.assign(kept)
    model.optimizer = new
    forget_compiled(model)
    return True
