"""`strip_pruning`: removes pruning state, keeping the zeros in the weights."""

import warnings

from keras import ops

from tfaccel.core import saving
from tfaccel.errors import UserError
from tfaccel.pruning import _state


def strip_pruning(model):
    """Applies the masks a last time and removes all pruning state, in place.

    Every pruned variable is multiplied by its mask, gets its original
    constraint back, and the state object is removed from the model and from
    any nested pruned layer. The result is the same plain Keras model object,
    of the same class, with real zeros in its weights: it saves to `.keras`
    and loads with `keras.saving.load_model(..., safe_mode=True)` with no
    tfaccel custom objects. A model that is not pruned is returned unchanged.

    Args:
        model: a model changed by `tfaccel.prune`.

    Returns:
        `model` itself (it is changed in place).

    Raises:
        UserError: the model was trained but `UpdatePruningStep` never ran,
            so nothing was pruned. (Without XLA, training itself fails first;
            XLA drops that in-graph check.)

    Example:

    ```python
    model = tfaccel.pruning.strip_pruning(model)
    model.save("pruned.keras")
    ```
    """
    for layer, state in _state.find_states(model):
        _check_trained_with_callback(layer, state)
        short = _shortfall(layer, state)
        if short:
            warnings.warn(short, UserWarning, stacklevel=2)
        state.apply_masks()
        for target in state.targets:
            target.variable.constraint = target.original_constraint
        object.__delattr__(layer, _state.ATTRIBUTE)
        saving.release(layer)
    return model


def _shortfall(layer, state):
    """Says when the masks are less sparse than the schedule's end, or None."""
    schedule = state.schedule
    if state.n_m is not None:
        wanted = 1.0 - state.n_m[0] / state.n_m[1]
    elif schedule.final_sparsity_at() is not None:
        wanted = schedule.final_sparsity_at()
    else:
        wanted = schedule.sparsity(max(state.last_step, schedule.begin_step))
    reached = min(
        (target.sparsity if target.updates else 0.0 for target in state.targets),
        default=0.0,
    )
    if reached >= wanted - 1e-6:
        return None
    why = schedule.shortfall() if state.n_m is None else None
    if why is None:
        why = (
            f"training stopped at step {state.last_step}, before the schedule's "
            f"end_step {schedule.end_step}; train for more steps, or end the "
            "schedule within the run"
        )
        if state.last_step < 0:
            why = "it was not trained with UpdatePruningStep since it was pruned"
        elif state.last_step < schedule.begin_step:
            why = (
                f"training stopped at step {state.last_step}, before the "
                f"schedule's begin_step {schedule.begin_step}"
            )
        elif 0 <= schedule.end_step <= state.last_step:
            why = (
                "the masks of kernels clustered since stay as they were "
                "(tfaccel.cluster freezes them); cluster once pruning has "
                "reached its final sparsity"
            )
    return (
        f"Model '{layer.name}' is stripped at {reached:.1%} sparsity, short of "
        f"its pruning schedule's final {wanted:.1%}: {why}"
    )


def _check_trained_with_callback(layer, state):
    optimizer = getattr(layer, "optimizer", None)
    if state.last_step >= 0 or optimizer is None:
        return
    iterations = int(ops.convert_to_numpy(optimizer.iterations))
    if iterations > 0:
        raise UserError(
            f"Model '{layer.name}' was trained for {iterations} steps but never "
            f"pruned. {_state.MISSING_CALLBACK}. Received: iterations={iterations}"
        )
