"""Seq2seq knowledge distillation on `keras.distillation`."""

from tfaccel.distillation.distiller import Seq2SeqDistiller, check_compatible
from tfaccel.distillation.losses import HiddenStateDistillation, TokenDistillation
from tfaccel.distillation.sequence_level import teacher_dataset

__all__ = [
    "HiddenStateDistillation",
    "Seq2SeqDistiller",
    "TokenDistillation",
    "check_compatible",
    "teacher_dataset",
]
