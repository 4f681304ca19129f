"""Applies a `distillation` recipe modifier: wraps the student for training."""

import pathlib

from tfaccel.distillation.distiller import Seq2SeqDistiller
from tfaccel.distillation.sequence_level import teacher_dataset
from tfaccel.errors import UserError


def apply_modifier(model, modifier, task, config, teacher_path=None, log=print):
    """Returns `(distiller, train_data)` for a recipe's `distillation` modifier.

    Args:
        model: the student, after the stage's other modifiers.
        modifier: a config with `teacher`, `temperature`, `alpha`,
            `features`, `feature_weight` and `sequence_level`.
        task: the recipe's task (sequence-level KD decodes its training
            sources with the teacher).
        config: the recipe's `BaselineConfig` (batch size and seed).
        teacher_path: where `teacher: baseline` is read from.
        log: callable for progress lines.

    Returns:
        A `Seq2SeqDistiller` to compile and fit, and the training dataset of
        sequence-level KD (None for the stage's usual data).
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
    teacher = load_model(path)
    distiller = Seq2SeqDistiller(
        teacher,
        model,
        temperature=modifier.temperature,
        alpha=modifier.alpha,
        features=[tuple(pair) for pair in modifier.features],
        feature_weight=modifier.feature_weight,
    )
    data = None
    if modifier.sequence_level:
        data = teacher_dataset(
            task, teacher, config.batch_size, shuffle=True, seed=config.seed, log=log
        )
    return distiller, data
