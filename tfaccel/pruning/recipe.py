"""Applies a `magnitude_pruning` recipe modifier to a model."""

from tfaccel.pruning.constant_sparsity import ConstantSparsity
from tfaccel.pruning.polynomial_decay import PolynomialDecay
from tfaccel.pruning.prune import prune


def apply_modifier(model, modifier, context):
    """Prunes `model` as a recipe's `magnitude_pruning` modifier says.

    Epochs in the recipe count from the start of the stage and become
    optimizer steps: `step = initial_step + epoch * steps_per_epoch`.
    `frequency` is already in steps; a polynomial schedule shorter than one
    period updates at its start and end instead. Its end step is moved
    down to its last update step (a multiple of `frequency` after its begin
    step), so the final sparsity is applied. Schedules follow
    `optimizer.iterations`, so a stage that goes on with an optimizer that
    has already run must pass its iteration count as `initial_step`.

    Args:
        model: a built Keras model; changed in place.
        modifier: a `tfaccel.recipe.modifiers.MagnitudePruning`.
        context: a `tfaccel.recipe.context.StageContext`; its
            `steps_per_epoch` and `initial_step` (`optimizer.iterations`
            when the stage starts) are used.

    Returns:
        `model`, pruned; fit it with `tfaccel.callbacks(model)`.

    Example:

    ```python
    model = apply_modifier(model, recipe.stages[0].modifiers[0], StageContext(500))
    ```
    """
    steps_per_epoch, initial_step = context.steps_per_epoch, context.initial_step
    _check_count("steps_per_epoch", steps_per_epoch, minimum=1)
    _check_count("initial_step", initial_step, minimum=0)
    block = None if modifier.block is None else tuple(modifier.block)
    schedule = schedule_from_config(modifier.schedule, steps_per_epoch, initial_step)
    return prune(model, modifier.targets, schedule, modifier.structure, block)


def schedule_from_config(config, steps_per_epoch, initial_step=0):
    """Builds the `PruningSchedule` of a recipe `schedule:` block.

    Args:
        config: a `PolynomialDecaySchedule` or `ConstantSchedule` config.
        steps_per_epoch: int. Optimizer steps in one epoch.
        initial_step: int. Optimizer step at epoch 0 of the stage.

    Returns:
        A `PolynomialDecay` or `ConstantSparsity`.
    """
    begin = initial_step + config.begin_epoch * steps_per_epoch
    if config.type == "polynomial_decay":
        end = initial_step + config.end_epoch * steps_per_epoch
        # A schedule shorter than one update period would never reach its
        # final sparsity; update at least at its start and its end.
        frequency = max(1, min(config.frequency, end - begin))
        return PolynomialDecay(
            config.initial_sparsity,
            config.final_sparsity,
            begin_step=begin,
            end_step=_last_update(begin, end, frequency),
            power=config.power,
            frequency=frequency,
        )
    end = config.end_epoch * steps_per_epoch + initial_step
    end = -1 if config.end_epoch == -1 else end
    return ConstantSparsity(
        config.sparsity, begin_step=begin, end_step=end, frequency=config.frequency
    )


def _last_update(begin, end, frequency):
    # Masks change only every `frequency` steps; end on one of those steps.
    snapped = end - (end - begin) % frequency
    return snapped if snapped > begin else end


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}"
        )
