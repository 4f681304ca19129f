"""Distillation losses for sequence models, built on `keras.distillation`.

Keras's `LogitsDistillation` and `FeatureDistillation` average over every
position of a batch. A seq2seq batch is mostly padding at its short end, so
these subclasses take the padding mask and average over real tokens only.
"""

import keras
import tensorflow as tf
from keras import ops


class TokenDistillation(keras.distillation.LogitsDistillation):
    """Token-level KD on decoder logits: KL(teacher || student) at temperature T.

    Hinton et al. (2015): both distributions are softened by `temperature`,
    and the loss is scaled by `T**2` so its gradients keep the size of the
    hard-label loss's as T changes. Averaged over the tokens where `mask` is
    non-zero (the padding mask of the targets).

    Args:
        temperature: float > 0.

    Example:

    ```python
    loss = TokenDistillation(temperature=2.0)
    value = loss.compute_loss(teacher_logits, student_logits, mask=weights)
    ```
    """

    def __init__(self, temperature=2.0):
        super().__init__(temperature=temperature, loss="kl_divergence")

    def compute_loss(self, teacher_outputs, student_outputs, mask=None, **kwargs):
        t = float(self.temperature)
        teacher = ops.softmax(ops.cast(teacher_outputs, "float32") / t, axis=-1)
        student = ops.log_softmax(ops.cast(student_outputs, "float32") / t, axis=-1)
        # A teacher probability of exactly 0 adds 0 * log(1e-30) = 0, not NaN.
        teacher_log = ops.log(ops.maximum(teacher, 1e-30))
        kl = ops.sum(teacher * (teacher_log - student), axis=-1)  # (batch, len)
        return _masked_mean(kl, mask) * (t * t)

    def get_config(self):
        return {"temperature": self.temperature}


class HiddenStateDistillation(keras.distillation.FeatureDistillation):
    """Mean squared error between a teacher layer's and a student layer's output.

    When the widths differ, `Seq2SeqDistiller` projects the student's states
    to the teacher's width with a learned `Dense` layer first. Averaged over
    the non-padding positions of the side the layers belong to.

    Args:
        teacher_layer_name: a layer of the teacher, e.g. `"decoder_layer_2"`.
        student_layer_name: a layer of the student, e.g. `"decoder_layer_1"`.
        side: `"encoder"` or `"decoder"`: whose padding mask applies. By
            default, `"encoder"` when the teacher layer's name starts with
            it, else `"decoder"`.
    """

    def __init__(self, teacher_layer_name, student_layer_name, side=None):
        super().__init__(
            loss="mse",
            teacher_layer_name=teacher_layer_name,
            student_layer_name=student_layer_name,
        )
        if side is None:
            side = "encoder" if teacher_layer_name.startswith("encoder") else "decoder"
        if side not in ("encoder", "decoder"):
            raise ValueError(
                f"`side` must be 'encoder' or 'decoder'. Received: side={side!r}"
            )
        self.side = side

    def compute_loss(self, teacher_outputs, student_outputs, mask=None, **kwargs):
        error = ops.square(
            ops.cast(teacher_outputs, "float32") - ops.cast(student_outputs, "float32")
        )
        return _masked_mean(ops.mean(error, axis=-1), mask)

    def get_config(self):
        return {
            "teacher_layer_name": self.teacher_layer_name,
            "student_layer_name": self.student_layer_name,
            "side": self.side,
        }


def _masked_mean(values, mask):
    """Mean of `values` (batch, len) over the positions where `mask` is set.

    Under a distribution strategy, each replica divides its sum by the token
    count of the whole global batch. Keras adds the replicas' gradients, so
    training follows the global batch's mean, as on one device, however the
    padding is split between replicas.
    """
    if mask is None:
        mask = ops.ones_like(values)
    mask = ops.cast(mask, values.dtype)
    count = _sum_over_replicas(ops.sum(mask))
    return ops.sum(values * mask) / ops.maximum(count, 1.0)


def _sum_over_replicas(value):
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    # All replicas in sync, across workers too (MultiWorkerMirroredStrategy),
    # the way the gradients are added.
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
