"""`prune`: magnitude pruning of any Keras 3 model, in place."""

import re
import warnings

import keras
import numpy as np

from tfaccel.core import saving
from tfaccel.core.kernels import input_axes, owner_layers
from tfaccel.core.strategy import model_strategy
from tfaccel.core.targets import match_variables
from tfaccel.errors import UserError
from tfaccel.pruning import _state, _structure
from tfaccel.pruning.pruning_schedule import PruningSchedule


def prune(model, targets, schedule, structure=None, block=None):
    """Prunes the variables of `model` whose paths match `targets`, in place.

    Magnitude pruning (Zhu & Gupta, "To prune, or not to prune", 2017,
    https://arxiv.org/abs/1710.01878): at the steps `schedule` picks, the
    `UpdatePruningStep` callback zeroes the smallest-|w| weights of each
    target, and a mask keeps them at zero through every optimizer step.
    Masks change only through the callback, as in tfmot, not here.

    - Unstructured: exactly `round(sparsity * size)` weights of each target
      are zeroed (round half to even; ties by position).
    - N:M (`structure="2:4"`): in every run of M weights along the input
      (contracted) axis that feed one output unit, the N largest are kept
      (Mishra et al., 2021, https://arxiv.org/abs/2104.08378). The pattern is
      fixed: it is set at the schedule's first update step, whatever the
      sparsity then, and its sparsity is `1 - N/M`.
    - Block (`block=(1, 4)`): blocks over the `(in, out)` view of each kernel,
      scored by mean |w|; exactly `round(sparsity * n_blocks)` are zeroed.

    Targets are regexes, matched with `re.fullmatch` against `variable.path`
    of `model.trainable_weights`, so nested layers of keras-hub
    `TransformerEncoder`, `BartBackbone` or `T5Backbone` are reached. An
    optional `re:` prefix is dropped. Embeddings and layer norms are pruned
    only when a regex names them: `.*kernel` matches neither
    (`.../embeddings`, `.../gamma`).

    Args:
        model: a built Keras 3 model (any kind: Functional, subclassed,
            keras-hub backbone). It is changed in place.
        targets: list of regexes over variable paths.
        schedule: a `PruningSchedule` such as `tfaccel.PolynomialDecay`.
        structure: None for unstructured, or an `"N:M"` string.
        block: None, or `(rows, cols)` of a block over the `(in, out)` view.

    Returns:
        `model`, ready for `model.fit(..., callbacks=tfaccel.callbacks(model))`.

    Example:

    ```python
    model = tfaccel.prune(
        model,
        targets=[r".*feedforward.*kernel"],
        schedule=tfaccel.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=2000),
    )
    model.fit(ds, callbacks=tfaccel.callbacks(model))
    model = tfaccel.strip(model)
    ```
    """
    _check_arguments(model, schedule)
    n_m, block = _structure.parse_structure(structure, block)
    variables = match_variables(model, targets)
    _check_variables(variables, n_m, block)
    owners = owner_layers(model)
    axes = [input_axes(v, owners.get(id(v))) for v in variables]
    for variable, variable_axes in zip(variables, axes, strict=True):
        _structure.check_shape(variable.path, variable.shape, variable_axes, n_m, block)
    if n_m is None and schedule.shortfall():
        # N:M sets its fixed pattern at the first update, whatever its step.
        warnings.warn(schedule.shortfall(), UserWarning, stacklevel=2)
    with model_strategy(model).scope():
        state = _build_state(variables, axes, schedule, n_m, block)
    for target in state.targets:
        target.variable.constraint = _state.MaskConstraint(
            target.mask, state.step, target.original_constraint, state
        )
    object.__setattr__(model, _state.ATTRIBUTE, state)
    return saving.attach(model)


def _check_arguments(model, schedule):
    if not isinstance(model, keras.Model) or not model.built:
        raise UserError(
            "`prune` needs a built Keras 3 model; call it on a batch or "
            f"`build()` it first. Received: model={model!r}"
        )
    if not isinstance(schedule, PruningSchedule):
        raise UserError(
            "`schedule` must be a PruningSchedule, such as "
            f"tfaccel.PolynomialDecay. Received: schedule={schedule!r}"
        )
    pruned = [layer.name for layer, _ in _state.find_states(model)]
    if pruned:
        raise UserError(
            f"Model '{model.name}' is already pruned (state on {pruned}); call "
            f"tfaccel.strip(model) before pruning it again. Received: model="
            f"{model.name!r}"
        )


def _check_variables(variables, n_m, block):
    for variable in variables:
        if isinstance(variable.constraint, _state.MaskConstraint):
            raise UserError(
                f"Variable '{variable.path}' is already pruned (by an enclosing "
                f"or nested model). Received: path={variable.path!r}"
            )
        if not np.issubdtype(np.dtype(variable.dtype), np.floating):
            raise UserError(
                f"Only float variables can be pruned; '{variable.path}' is "
                f"{variable.dtype}. Received: dtype={variable.dtype!r}"
            )
        if (n_m or block) and len(variable.shape) < 2:
            raise UserError(
                f"N:M and block sparsity need a kernel of 2 or more axes; "
                f"'{variable.path}' has shape {tuple(variable.shape)}. "
                f"Received: shape={tuple(variable.shape)}"
            )


def _build_state(variables, axes, schedule, n_m, block):
    targets = [
        _state.Target(
            variable=variable,
            mask=keras.Variable(
                np.ones(variable.shape, dtype=variable.dtype),
                trainable=False,
                autocast=False,
                aggregation="only_first_replica",
                name="pruning_mask",
            ),
            input_axes=variable_axes,
            original_constraint=variable.constraint,
        )
        for variable, variable_axes in zip(variables, axes, strict=True)
    ]
    step = keras.Variable(
        np.int64(-1),
        dtype="int64",
        trainable=False,
        aggregation="only_first_replica",
        name="pruning_step",
    )
    return _state.PruningState(targets, schedule, n_m, block, step)


def save_spec(model):
    """Returns what `load_spec` needs to prune `model` again, or None.

    Only the pruning `model` itself carries (a nested pruned model saves its
    own): the exact variable paths, the schedule and the structure. The
    masks, the step and the callback's counters are saved as weights.
    """
    state = getattr(model, _state.ATTRIBUTE, None)
    if state is None:
        return None
    return {
        "paths": [target.variable.path for target in state.targets],
        "schedule": keras.saving.serialize_keras_object(state.schedule),
        "structure": None if state.n_m is None else "{}:{}".format(*state.n_m),
        "block": None if state.block is None else list(state.block),
    }


def load_spec(model, spec):
    """Prunes `model` (rebuilt from its config) as `save_spec` described it."""
    schedule = keras.saving.deserialize_keras_object(spec["schedule"])
    block = None if spec["block"] is None else tuple(spec["block"])
    targets = [re.escape(path) for path in spec["paths"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warned when it was first pruned
        return prune(model, targets, schedule, spec["structure"], block)
