"""Pruning state kept beside a model: masks, schedule, step and constraints.

The state is a plain Python object stored as `model._tfaccel_pruning`, so
`model.weights` does not change; `tfaccel.core.saving` writes its masks,
step and counters into Keras's weights files, and the schedule and targets
into the model's config (`prune.save_spec`).
Masks reach the weights through `variable.constraint`: Keras 3 optimizers
apply it in the training graph right after every update, so pruned weights
stay exactly zero, even with `steps_per_execution > 1`.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfaccel.errors import TracedUserError
from tfaccel.pruning import _masks, _structure

ATTRIBUTE = "_tfaccel_pruning"
MISSING_CALLBACK = (
    "Pruning requires the tfaccel.pruning.UpdatePruningStep callback "
    "(tfaccel.callbacks(model)) in model.fit(callbacks=...)"
)


class MaskConstraint(keras.constraints.Constraint):
    """Multiplies a weight by its mask after the original constraint, if any.

    Training without `UpdatePruningStep` fails loudly, with an error whose
    first line names the callback: when `fit` traces its train step (after
    the callbacks' first `on_train_batch_begin`), a state whose step was
    never set raises `TracedUserError`. The step is also asserted in the
    graph, for a train function traced before the state lost its step (XLA
    drops that `Assert`; `strip` then refuses such a model).
    """

    def __init__(self, mask, step, original=None, state=None):
        self.mask = mask
        self.step = step
        self.original = original
        self.state = state

    def __call__(self, weight):
        if self.state is not None and self.state.last_step < 0:
            raise TracedUserError(
                f"{MISSING_CALLBACK}: the pruning step was never set, so no mask "
                f"applies. Received: callbacks without UpdatePruningStep"
            )
        tf.debugging.assert_greater_equal(
            ops.convert_to_tensor(self.step), np.int64(0), message=MISSING_CALLBACK
        )
        if self.original is not None:
            weight = self.original(weight)
        return ops.multiply(weight, ops.cast(self.mask, weight.dtype))


@dataclasses.dataclass(eq=False)
class Target:
    """One pruned variable and what its mask needs."""

    variable: object  # the keras.Variable pruned in place
    mask: object  # non-trainable keras.Variable of the same shape, 1 = keep
    input_axes: tuple  # contracted axes, for N:M and block masks
    original_constraint: object  # restored by strip
    sparsity: float = 0.0  # target sparsity of the last mask update
    updates: int = 0  # mask updates so far


@dataclasses.dataclass(eq=False)
class PruningState:
    """Everything `prune()` adds to a model; removed again by `strip`."""

    targets: list  # of Target
    schedule: object  # a PruningSchedule
    n_m: tuple | None  # (n, m) or None
    block: tuple | None  # (rows, cols) or None
    step: object  # int64 keras.Variable: the optimizer step, -1 until set
    last_step: int = -1  # last step the callback saw (Python side)

    def advance(self, step, frozen=frozenset()):
        """Sets the step and updates masks if the schedule asks for it since last.

        A step at or below the last one means a new optimizer (or a restored
        one): the schedule is followed again from that step, as in tfmot,
        unless it had already ended. Then its final masks hold, and the last
        step stays the schedule's: a later recipe stage (QAT after pruning)
        compiles a new optimizer, and replaying the schedule from step 0
        would un-prune the model.

        Args:
            step: the optimizer's iteration count.
            frozen: ids of variables whose masks stay as they are: weights
                another technique froze and computes with (a clustered
                kernel keeps the zeros it was clustered with).
        """
        end = self.schedule.end_step
        if 0 <= end <= self.last_step and step <= self.last_step:
            self.step.assign(np.int64(step))
            return
        first = self.last_step + 1 if step > self.last_step else step
        update = self.schedule.last_update_step(first, step)
        self.step.assign(np.int64(step))
        self.last_step = step
        if update is not None:
            self.update_masks(self.schedule.sparsity(update), frozen)

    def update_masks(self, sparsity, frozen=frozenset()):
        """Recomputes every mask from the current weights and applies it.

        Runs on the host in cross-replica context: each assign writes the same
        value to every replica. An N:M pattern is fixed, so it is set at the
        first update only.
        """
        for target in self.targets:
            if self.n_m is not None and target.updates:
                continue
            if id(target.variable) in frozen:
                continue
            weights = ops.convert_to_numpy(target.variable)
            mask = self._mask(target, weights, sparsity)
            target.mask.assign(mask)
            target.variable.assign(weights * mask)
            target.sparsity = self._target_sparsity(sparsity)
            target.updates += 1

    def apply_masks(self):
        """Multiplies every weight by its mask once more."""
        for target in self.targets:
            weights = ops.convert_to_numpy(target.variable)
            target.variable.assign(weights * ops.convert_to_numpy(target.mask))

    def _mask(self, target, weights, sparsity):
        if self.n_m is not None:
            return _masks.n_m_mask(weights, target.input_axes, *self.n_m)
        if self.block is not None:
            return _masks.block_mask(weights, target.input_axes, self.block, sparsity)
        return _masks.unstructured_mask(weights, sparsity)

    def _target_sparsity(self, sparsity):
        if self.n_m is not None:
            return 1.0 - self.n_m[0] / self.n_m[1]
        return float(sparsity)


def find_states(model):
    """Returns `(layer, state)` for `model` and every nested layer it prunes."""
    return [
        (layer, getattr(layer, ATTRIBUTE))
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if getattr(layer, ATTRIBUTE, None) is not None
    ]


def marks(model):
    """Returns the ids of the pruned variables of `model`.

    It reads each variable's constraint, so it also finds variables that an
    enclosing model pruned.
    """
    return {
        id(variable)
        for variable in model.weights
        if isinstance(variable.constraint, MaskConstraint)
    }


def untracked_variables(model):
    """Returns each state's step and masks: Keras does not track them."""
    found = []
    for _, state in find_states(model):
        found.append(state.step)
        found.extend(target.mask for target in state.targets)
    return found


def counters(model):
    """Returns the callback's Python-side step and each target's progress."""
    return [
        {
            "last_step": state.last_step,
            "targets": [[t.sparsity, t.updates] for t in state.targets],
        }
        for _, state in find_states(model)
    ]


def set_counters(model, saved):
    """Sets what `counters` returned, so masks update when they would have."""
    for (_, state), counts in zip(find_states(model), saved, strict=True):
        state.last_step = counts["last_step"]
        for target, (sparsity, updates) in zip(
            state.targets, counts["targets"], strict=True
        ):
            target.sparsity, target.updates = sparsity, updates


def describe(model):
    """Returns `{id(variable): structure}` of every pruned variable: "2:4"..."""
    return {
        id(target.variable): _structure.structure_label(state.n_m, state.block)
        for _, state in find_states(model)
        for target in state.targets
    }
