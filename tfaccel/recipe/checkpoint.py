"""Epoch checkpoints of recipe stages, so a killed run resumes where it was.

Keras's `BackupAndRestore` saves what Keras tracks: the model's weights and
the optimizer. tfaccel keeps part of its state beside the model, untracked
(pruning masks and step, QAT activation ranges and masks, and the Python
side counters of the pruning and clustering callbacks), so a stage
checkpoint here holds all of it:

- `arrays.npz`: every model variable, every extra variable of the fitted
  model (a distiller's projections), the optimizer's variables and
  tfaccel's untracked variables, keyed by kind and position;
- `state.json`: the epochs done and the Python-side counters.

Each technique tells the registry (`tfaccel.core.registry`) which of its
variables are untracked and what its counters are; this module knows no
technique.

A checkpoint folder is written under a temporary name and renamed into
place (`tfaccel._io.atomic_dir`), so a kill while saving leaves the previous
checkpoint intact. Variables are matched by position: the runner rebuilds
the stage the same way (same baseline, same modifiers, same data) before it
restores, and a count or shape mismatch is refused rather than guessed at.
"""

import json

import keras
import numpy as np

from tfaccel._io import atomic_dir
from tfaccel.core import registry
from tfaccel.errors import UserError


def _groups(model, trained, with_optimizer):
    """Returns `{kind: [variables]}` for a checkpoint of `model`."""
    own = {id(v) for v in model.variables}
    groups = {
        "model": list(model.variables),
        "tfaccel": registry.untracked_variables(model),
    }
    if trained is not None and trained is not model:
        groups["trained"] = [v for v in trained.variables if id(v) not in own]
    if with_optimizer:
        optimizer = (trained if trained is not None else model).optimizer
        groups["optimizer"] = list(optimizer.variables)
    return groups


def save(folder, model, epoch, trained=None):
    """Writes a checkpoint of `model` after `epoch` epochs into `folder`.

    Args:
        folder: the checkpoint folder; replaced atomically.
        model: the model the techniques were applied to.
        epoch: epochs completed in the stage.
        trained: the model being fitted, if it is not `model` (a distiller
            around it); its optimizer is saved.
    """
    groups = _groups(model, trained, with_optimizer=True)
    arrays = {
        f"{kind}/{i}": keras.ops.convert_to_numpy(variable)
        for kind, variables in groups.items()
        for i, variable in enumerate(variables)
    }
    state = {
        "epoch": int(epoch),
        "counts": {kind: len(variables) for kind, variables in groups.items()},
        "counters": registry.counters(model),
    }
    with atomic_dir(folder, replace=True) as tmp:
        np.savez(tmp / "arrays.npz", **arrays)
        (tmp / "state.json").write_text(json.dumps(state, indent=1))


def saved_epoch(folder):
    """Returns the epochs a checkpoint in `folder` has done, or None."""
    path = folder / "state.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())["epoch"]


def restore(folder, model, trained=None, with_optimizer=True):
    """Loads a checkpoint written by `save`; returns its epoch.

    Args:
        folder: the checkpoint folder.
        model: rebuilt the way it was when saved.
        trained: the fitted model around `model`, if any; compiled.
        with_optimizer: False to skip the optimizer (a finished stage,
            whose optimizer is not used again).

    Raises:
        UserError: if the rebuilt model's variables do not match (rerun
            with --restart).
    """
    state = json.loads((folder / "state.json").read_text())
    if with_optimizer:
        fitted = trained if trained is not None else model
        if not fitted.optimizer.built:
            fitted.optimizer.build(fitted.trainable_variables)
    groups = _groups(model, trained, with_optimizer)
    with np.load(folder / "arrays.npz") as arrays:
        for kind, variables in groups.items():
            if state["counts"].get(kind) != len(variables):
                raise UserError(
                    f"Checkpoint {folder} holds {state['counts'].get(kind)} "
                    f"'{kind}' variables; the rebuilt stage has {len(variables)}. "
                    "It was written by another version of the recipe or of "
                    "tfaccel; rerun with --restart."
                )
            for i, variable in enumerate(variables):
                value = arrays[f"{kind}/{i}"]
                if tuple(value.shape) != tuple(variable.shape):
                    raise UserError(
                        f"Checkpoint {folder}: '{kind}/{i}' ({variable.path}) has "
                        f"shape {value.shape}; the rebuilt stage has "
                        f"{tuple(variable.shape)}. Rerun with --restart."
                    )
                variable.assign(value)
    registry.set_counters(model, state["counters"])
    return state["epoch"]


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves a stage checkpoint (`save`) at every epoch end.

    The last epoch's checkpoint is written at train end instead, after the
    callbacks before it in the list (`tfaccel.callbacks`) have made their
    train-end changes (a pruning schedule's last mask update), so a
    checkpoint of the whole stage holds its final state.

    Args:
        folder: the checkpoint folder.
        model: the model the techniques were applied to.
        trained: the model being fitted, if it is not `model`.
    """

    def __init__(self, folder, model, trained=None):
        super().__init__()
        self.folder = folder
        self.technique_model = model
        self.trained = trained

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 < self.params["epochs"]:
            save(self.folder, self.technique_model, epoch + 1, self.trained)

    def on_train_end(self, logs=None):
        save(self.folder, self.technique_model, self.params["epochs"], self.trained)
