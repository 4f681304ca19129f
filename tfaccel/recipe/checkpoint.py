"""Epoch checkpoints of recipe stages, so a killed run resumes where it was.

A checkpoint is what Keras's own `save_weights` writes, which holds the
techniques' state too (`tfaccel.core.saving`): masks and step, ranges,
cluster assignments and the callbacks' counters. This module knows no
technique. A stage checkpoint folder holds:

- `model.weights.h5`: the model the techniques were applied to, with the
  optimizer when it is the model being fitted;
- `fitted.weights.h5`: the model being fitted, when it wraps the other (a
  distiller, with its projections and the optimizer);
- `state.json`: the epochs done and the techniques' specs, which the rebuilt
  stage must match.

Keras's `BackupAndRestore` writes the same weights files; this callback
adds what a recipe run needs beside them: the folder is written under a
temporary name and renamed into place (`tfaccel._io.atomic_dir`), so a kill
while saving leaves the previous checkpoint intact; a finished stage is
restored without its optimizer; and a worker reads the chief's folder.
"""

import json
import warnings

import keras

from tfaccel._io import atomic_dir
from tfaccel.core import saving
from tfaccel.errors import UserError

MODEL = "model.weights.h5"
FITTED = "fitted.weights.h5"
_SKIPPED_OPTIMIZER = "Skipping variable loading for optimizer"


def save(folder, model, epoch, trained=None):
    """Writes a checkpoint of `model` after `epoch` epochs into `folder`.

    Args:
        folder: the checkpoint folder; replaced atomically.
        model: the model the techniques were applied to.
        epoch: epochs completed in the stage.
        trained: the model being fitted, if it is not `model` (a distiller
            around it); its optimizer is saved.
    """
    state = {"epoch": int(epoch), "techniques": saving.specs(model)}
    with atomic_dir(folder, replace=True) as tmp:
        model.save_weights(tmp / MODEL)
        if trained is not None and trained is not model:
            trained.save_weights(tmp / FITTED)
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
        UserError: if the rebuilt stage does not match the checkpoint
            (rerun with --restart).
    """
    state = json.loads((folder / "state.json").read_text())
    rebuilt = saving.specs(model)
    if state["techniques"] != rebuilt:
        raise UserError(
            f"Checkpoint {folder} does not fit the rebuilt stage: it was saved "
            f"with techniques {sorted(state['techniques'])} set up otherwise than "
            f"{sorted(rebuilt)} now. It was written by another version of the "
            "recipe or of tfaccel; rerun with --restart."
        )
    fitted = model if trained is None else trained
    if with_optimizer and not fitted.optimizer.built:
        fitted.optimizer.build(fitted.trainable_variables)
    path = folder / (MODEL if fitted is model or not with_optimizer else FITTED)
    target = fitted if with_optimizer else model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            target.load_weights(path)
        except ValueError as error:
            first = str(error).strip().splitlines()[0][:200]
            raise UserError(
                f"Checkpoint {folder} does not fit the rebuilt stage ({first}). "
                "It was written by another version of the recipe or of "
                "tfaccel; rerun with --restart."
            ) from error
    skipped = [w for w in caught if _SKIPPED_OPTIMIZER in str(w.message)]
    if with_optimizer and skipped:
        raise UserError(
            f"Checkpoint {folder} does not fit the rebuilt stage: "
            f"{str(skipped[0].message).splitlines()[0]} Rerun with --restart."
        )
    for warning in caught:
        if _SKIPPED_OPTIMIZER not in str(warning.message):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
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
