"""Magnitude pruning for Keras 3: unstructured, N:M and block sparsity.

`prune` changes a model in place, `UpdatePruningStep` drives the masks during
`model.fit`, `strip_pruning` leaves plain weights with real zeros, and
`pruning_summary` measures them.
"""

from tfaccel.core import registry
from tfaccel.pruning import _state
from tfaccel.pruning.constant_sparsity import ConstantSparsity
from tfaccel.pruning.polynomial_decay import PolynomialDecay
from tfaccel.pruning.prune import load_spec as _load_spec
from tfaccel.pruning.prune import prune
from tfaccel.pruning.prune import save_spec as _save_spec
from tfaccel.pruning.pruning_schedule import PruningSchedule
from tfaccel.pruning.recipe import apply_modifier
from tfaccel.pruning.strip import strip_pruning
from tfaccel.pruning.summary import pruning_summary
from tfaccel.pruning.update_pruning_step import UpdatePruningStep

__all__ = [
    "ConstantSparsity",
    "PolynomialDecay",
    "PruningSchedule",
    "UpdatePruningStep",
    "apply_modifier",
    "prune",
    "pruning_summary",
    "strip_pruning",
]

# === Registration ===

registry.register(
    registry.Technique(
        name="pruning",
        label="pruned",
        order=10,  # applied first: clustering and QAT keep its zeros
        strip_order=30,  # stripped last: after QAT puts back its constraint
        find_states=_state.find_states,
        strip=strip_pruning,
        callback=UpdatePruningStep,
        marks=_state.marks,
        untracked_variables=_state.untracked_variables,
        describe=_state.describe,
        counters=_state.counters,
        set_counters=_state.set_counters,
        save_spec=_save_spec,
        load_spec=_load_spec,
    )
)
