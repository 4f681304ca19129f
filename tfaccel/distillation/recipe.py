"""Applies a `distillation` recipe modifier: wraps the student for training."""

import pathlib

from tfaccel.distillation.distiller import Seq2SeqDistiller
from tfaccel.distillation.sequence_level import teacher_dataset
from tfaccel.errors import UserError


def load_teacher(modifier, teacher_path=None, log=print):
    """Loads the teacher a recipe's `distillation` modifier names.

    Args:
        modifier: a config with `teacher`: `"baseline"` or a `.keras` path.
        teacher_path: where `teacher: baseline` is read from (the recipe's
            starting model, as saved before any stage changed it).
        log: callable for a progress line.

    Returns:
        The teacher model.
    """
    from tfaccel.models import load_model

    path = teacher_path if modifier.teacher == "baseline" else modifier.teacher
    path = pathlib.Path(path) if path is not None else None
    if path is None or not path.is_file():
        raise UserError(
            f"Distillation teacher '{modifier.teacher}' not found at '{path}'. "
            "Use `teacher: baseline` or the path of a .keras model. "
            f"Received: teacher={modifier.teacher!r}"
        )
    log(f"Distilling from {path} (T={modifier.temperature}, alpha={modifier.alpha})")
    return load_model(path)


def training_data(modifier, teacher, task, config, log=print):
    """Returns the stage's training data for sequence-level KD, else None.

    `sequence_level` relabels the training sources with the teacher's
    outputs; `unlabelled` adds the teacher's outputs on the task's
    unlabelled sources (G2P: words CMUdict lacks). The runner asks before
    applying the stage's other modifiers, so that their epoch-based
    schedules count the steps of the data really used.
    """
    if not modifier.sequence_level and not modifier.unlabelled:
        return None
    extra = (
        task.unlabelled_sources(modifier.max_unlabelled) if modifier.unlabelled else ()
    )
    return teacher_dataset(
        task,
        teacher,
        config.batch_size,
        shuffle=True,
        seed=config.seed,
        log=log,
        relabel=modifier.sequence_level,
        unlabelled=extra,
    )


def apply_modifier(model, modifier, context):
    """Returns a `Seq2SeqDistiller` to compile and fit, for `distillation`.

    Args:
        model: the student, after the stage's other modifiers.
        modifier: a config with `temperature`, `alpha`, `features` and
            `feature_weight`.
        context: a `tfaccel.recipe.context.StageContext` whose `teacher` is
            the model from `load_teacher`; without one (a finished stage
            being rebuilt) the student is returned as it is.
    """
    if context.teacher is None:
        return model
    return Seq2SeqDistiller(
        context.teacher,
        model,
        temperature=modifier.temperature,
        alpha=modifier.alpha,
        features=[tuple(pair) for pair in modifier.features],
        feature_weight=modifier.feature_weight,
    )
