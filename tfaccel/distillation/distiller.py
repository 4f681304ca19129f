"""`Seq2SeqDistiller`: `keras.distillation.Distiller` for encoder-decoders."""

import keras
import tensorflow as tf
from keras import ops

from tfaccel.distillation.losses import HiddenStateDistillation, TokenDistillation
from tfaccel.errors import UserError

PAD_ID = 0


class Seq2SeqDistiller(keras.distillation.Distiller):
    """Trains a seq2seq student on labels and on a frozen teacher's outputs.

    The loss is `alpha * student_loss + (1 - alpha) * distillation`, where
    the student loss is the one given to `compile` (weighted by the
    dataset's padding weights) and the distillation term is token-level KD
    on the decoder logits (`TokenDistillation`) plus, optionally,
    hidden-state KD between matched layers (`HiddenStateDistillation`),
    all averaged over real tokens only. Keras's `Distiller` averages over
    padding too and ignores sample weights, so `compute_loss` is replaced;
    feature extraction, teacher freezing and loss tracking are Keras's.
    Under MirroredStrategy the KD terms average over the real tokens of the
    whole global batch, as on one device; the student loss is reduced the
    way Keras reduces it for any model.

    Fit it like the student; afterwards `distiller.student` is the trained
    model. Pruning, clustering or QAT applied to the student keep working:
    `tfaccel.callbacks(distiller)` finds them through it.

    Args:
        teacher: a trained Keras model with the student's inputs and the
            same output vocabulary.
        student: the Keras model to train (a functional model when
            `features` are given).
        temperature: float > 0, the softening temperature of token KD.
        alpha: float in [0, 1], the weight of the student's own loss.
        features: list of `(teacher_layer_name, student_layer_name)` pairs
            for hidden-state KD. When a pair's widths differ, a learned
            `Dense` projection maps the student's states to the teacher's
            width (it trains with the student and is dropped afterwards).
        feature_weight: weight of each hidden-state term against token KD.

    Example:

    ```python
    distiller = Seq2SeqDistiller(teacher, student, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer="adam", loss=loss, weighted_metrics=["accuracy"])
    distiller.fit(train_ds, epochs=4)
    student = distiller.student
    ```
    """

    def __init__(
        self,
        teacher,
        student,
        temperature=2.0,
        alpha=0.5,
        features=(),
        feature_weight=1.0,
        name="seq2seq_distiller",
        **kwargs,
    ):
        check_compatible(teacher, student)
        if not isinstance(temperature, int | float) or temperature <= 0:
            raise UserError(
                "The distillation `temperature` must be a number > 0 (2 to 4 is "
                f"usual). Received: temperature={temperature!r}"
            )
        if not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
            raise UserError(
                "The distillation `alpha` (weight of the hard-label loss) must "
                f"be in [0, 1]. Received: alpha={alpha!r}"
            )
        losses = [TokenDistillation(temperature)]
        for pair in features:
            losses.append(HiddenStateDistillation(*_layer_pair(teacher, student, pair)))
        super().__init__(
            teacher=teacher,
            student=student,
            distillation_losses=losses,
            distillation_loss_weights=[1.0] + [feature_weight] * (len(losses) - 1),
            student_loss_weight=float(alpha),
            name=name,
            **kwargs,
        )
        self.projections = {}
        for loss in losses[1:]:
            teacher_width = _width(teacher, loss.teacher_layer_name)
            student_width = _width(student, loss.student_layer_name)
            if teacher_width != student_width:
                projection = keras.layers.Dense(
                    teacher_width,
                    use_bias=False,
                    name=f"projection_{loss.student_layer_name}",
                )
                projection.build((None, None, student_width))
                self.projections[loss.student_layer_name] = projection

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if y_pred is None:
            y_pred = self(x, training=training)
        masks = {
            "decoder": (
                sample_weight if sample_weight is not None else ops.not_equal(y, PAD_ID)
            ),
            "encoder": ops.not_equal(x["encoder_token_ids"], PAD_ID),
        }
        student_loss = ops.convert_to_tensor(0.0)
        if self.student_loss_weight > 0 and y is not None:
            student_loss = self._student_loss(y, y_pred, sample_weight)
        distillation_loss = ops.convert_to_tensor(0.0)
        if self.student_loss_weight < 1:
            teacher = self._extract_all_teacher_features(x)
            student = self._extract_all_student_features(x, y_pred)
            for loss, weight in zip(
                self.distillation_losses, self.distillation_loss_weights, strict=True
            ):
                if isinstance(loss, HiddenStateDistillation):
                    states = student[loss.student_layer_name]
                    projection = self.projections.get(loss.student_layer_name)
                    if projection is not None:
                        states = projection(states)
                    value = loss.compute_loss(
                        teacher[loss.teacher_layer_name], states, mask=masks[loss.side]
                    )
                else:
                    value = loss.compute_loss(
                        teacher["final_output"], y_pred, mask=masks["decoder"]
                    )
                distillation_loss = distillation_loss + weight * value
        alpha = self.student_loss_weight
        total = alpha * student_loss + (1 - alpha) * distillation_loss
        # Under a strategy each replica's loss is its share, about 1/replicas
        # of the batch's (Keras adds their gradients); the trackers report
        # whole-batch values, as Keras's own `loss` does.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.student_loss_tracker.update_state(student_loss * replicas)
        self.distillation_loss_tracker.update_state(distillation_loss * replicas)
        self.total_loss_tracker.update_state(total * replicas)
        return total


def check_compatible(teacher, student):
    """Raises a `UserError` unless `teacher` can teach `student`.

    Both must read the same token ids and predict over the same vocabulary:
    token KD compares their distributions id by id.
    """
    for model, role in ((teacher, "teacher"), (student, "student")):
        if not isinstance(model, keras.Model) or not model.built:
            raise UserError(
                f"The {role} must be a built Keras model. Received: "
                f"{role}={type(model).__name__}"
            )
    for key in ("encoder_vocabulary_size", "decoder_vocabulary_size"):
        ours, theirs = getattr(student, key, None), getattr(teacher, key, None)
        if ours is not None and theirs is not None and ours != theirs:
            raise UserError(
                f"The teacher's {key} is {theirs} but the student's is {ours}: "
                "distillation compares predictions token by token, so both need "
                "the same vocabulary. Use a teacher trained on the same task and "
                f"vocabulary. Received: teacher {key}={theirs}, student {key}={ours}"
            )
    widths = [int(m.outputs[0].shape[-1]) for m in (teacher, student) if m.outputs]
    if len(widths) == 2 and widths[0] != widths[1]:
        raise UserError(
            f"The teacher predicts over {widths[0]} tokens and the student over "
            f"{widths[1]}: distillation needs the same output vocabulary. Use a "
            "teacher trained on the same task and vocabulary. Received: "
            f"teacher vocabulary={widths[0]}, student vocabulary={widths[1]}"
        )


def _layer_pair(teacher, student, pair):
    if len(pair) != 2:
        raise UserError(
            "Each hidden-state distillation pair is [teacher_layer, "
            f"student_layer]. Received: {pair!r}"
        )
    for model, role, name in (
        (teacher, "teacher", pair[0]),
        (student, "student", pair[1]),
    ):
        names = [layer.name for layer in model.layers]
        if name not in names:
            raise UserError(
                f"The {role} has no layer '{name}'. Its layers: {', '.join(names)}. "
                f"Received: {role}_layer={name!r}"
            )
    return pair


def _width(model, layer_name):
    return int(model.get_layer(layer_name).output.shape[-1])
