"""Seq2seq distillation: masked losses, the distiller, and its errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfaccel.distillation import (
    HiddenStateDistillation,
    Seq2SeqDistiller,
    TokenDistillation,
)
from tfaccel.errors import UserError
from tfaccel.models import Seq2SeqTransformer, SmoothedSparseCrossentropy


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_token_kd_is_masked_kl_at_temperature_times_t_squared():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(2, 3, 5)).astype("float32")
    student = rng.normal(size=(2, 3, 5)).astype("float32")
    mask = np.array([[1, 1, 0], [1, 0, 0]], "float32")
    t = 2.0
    p, q = _softmax(teacher / t), _softmax(student / t)
    kl = (p * (np.log(p) - np.log(q))).sum(-1)
    expected = (kl * mask).sum() / mask.sum() * t * t
    loss = TokenDistillation(temperature=t)
    got = float(loss.compute_loss(teacher, student, mask=mask))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Padding positions do not count: change them and nothing moves.
    noisy = student.copy()
    noisy[mask == 0] += 100.0
    np.testing.assert_allclose(
        float(loss.compute_loss(teacher, noisy, mask=mask)), expected, rtol=1e-5
    )
    assert float(loss.compute_loss(teacher, teacher, mask=mask)) == pytest.approx(
        0.0, abs=1e-6
    )


def test_hidden_state_kd_is_masked_mse_and_picks_its_side():
    teacher = np.zeros((1, 3, 4), "float32")
    student = np.ones((1, 3, 4), "float32")
    student[0, 2] = 50.0  # a padding position
    loss = HiddenStateDistillation("decoder_layer_1", "decoder_layer_0")
    mask = np.array([[1, 1, 0]], "float32")
    assert float(loss.compute_loss(teacher, student, mask=mask)) == pytest.approx(1.0)
    assert loss.side == "decoder"
    assert HiddenStateDistillation("encoder_layer_1", "encoder_layer_0").side == (
        "encoder"
    )


def _models(student_overrides=None):
    keras.utils.set_random_seed(1)
    teacher = Seq2SeqTransformer.from_preset("tiny", dropout=0.0)
    student = Seq2SeqTransformer.from_preset(
        "tiny", dropout=0.0, **(student_overrides or {"num_decoder_layers": 1})
    )
    return teacher, student


def _data(seed=0, batches=4):
    rng = np.random.default_rng(seed)
    source = rng.integers(3, 64, (batches * 8, 7)).astype("int32")
    target = rng.integers(3, 48, (batches * 8, 6)).astype("int32")
    source[:, 5:] = 0
    target[:, 4:] = 0
    target[:, 3] = 2
    decoder = np.concatenate([np.ones((len(target), 1), "int32"), target[:, :-1]], 1)
    weight = (target != 0).astype("float32")
    inputs = {"encoder_token_ids": source, "decoder_token_ids": decoder}
    return tf.data.Dataset.from_tensor_slices((inputs, target, weight)).batch(8)


def _compile(model):
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=SmoothedSparseCrossentropy(0.0),
        weighted_metrics=["accuracy"],
    )


def test_distillation_trains_the_student_towards_the_teacher():
    teacher, student = _models()
    before_teacher = [w.copy() for w in teacher.get_weights()]
    distiller = Seq2SeqDistiller(teacher, student, temperature=2.0, alpha=0.0)
    _compile(distiller)
    data = _data()
    first = distiller.evaluate(data, verbose=0, return_dict=True)
    distiller.fit(data, epochs=15, verbose=0)
    last = distiller.evaluate(data, verbose=0, return_dict=True)
    assert last["distillation_loss"] < 0.5 * first["distillation_loss"]
    assert last["student_loss"] == 0.0  # alpha 0: labels are not used
    for old, new in zip(before_teacher, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)  # the teacher is frozen
    assert distiller.student is student


def test_student_equal_to_its_teacher_has_zero_distillation_loss():
    teacher, _ = _models()
    twin = Seq2SeqTransformer.from_config(teacher.get_config())
    twin.set_weights(teacher.get_weights())
    distiller = Seq2SeqDistiller(teacher, twin, alpha=0.3)
    _compile(distiller)
    result = distiller.evaluate(_data(), verbose=0, return_dict=True)
    assert result["distillation_loss"] == pytest.approx(0.0, abs=1e-5)
    assert result["total_loss"] == pytest.approx(0.3 * result["student_loss"], rel=1e-4)


def test_hidden_state_kd_learns_a_projection_when_widths_differ():
    teacher, student = _models({"hidden_dim": 8, "num_decoder_layers": 1})
    distiller = Seq2SeqDistiller(
        teacher,
        student,
        alpha=0.5,
        features=[("decoder_layer_1", "decoder_layer_0")],
    )
    projection = distiller.projections["decoder_layer_0"]
    _compile(distiller)
    distiller.fit(_data(), epochs=1, verbose=0)
    assert projection.kernel.shape == (8, 16)
    trainable = {id(v) for v in distiller.trainable_variables}
    assert id(projection.kernel) in trainable
    assert not any(id(v) in trainable for v in teacher.weights)


def test_a_teacher_with_another_vocabulary_is_refused():
    teacher = Seq2SeqTransformer.from_preset("tiny", decoder_vocabulary_size=50)
    student = Seq2SeqTransformer.from_preset("tiny")
    with pytest.raises(UserError, match=r"decoder_vocabulary_size is 50 .* is 48"):
        Seq2SeqDistiller(teacher, student)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0}, r"temperature` must be a number > 0"),
        ({"alpha": 1.5}, r"alpha` .* must be in \[0, 1\]"),
        ({"features": [("decoder_layer_9", "decoder_layer_0")]}, r"no layer"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    teacher, student = _models()
    with pytest.raises(UserError, match=message):
        Seq2SeqDistiller(teacher, student, **kwargs)


@pytest.mark.large
def test_sequence_level_targets_are_the_teachers_greedy_outputs():
    from tfaccel import tasks
    from tfaccel.distillation import teacher_dataset

    task = tasks.get_task("g2p", max_examples=300)
    keras.utils.set_random_seed(0)
    teacher = Seq2SeqTransformer.from_preset("tiny", **task.model_overrides())
    data = teacher_dataset(task, teacher, batch_size=64, shuffle=False, log=print)
    sources = list(dict.fromkeys(task.sources("train")))
    expected = {}
    for source, ids in zip(sources, task.generate(teacher, sources), strict=True):
        # An untrained teacher may never say EOS: the target is cut to fit
        # the length limit, EOS included.
        cut = min(ids.index(2) if 2 in ids else len(ids), task.max_generate_length - 1)
        expected[tuple(task.source_vocab.encode(source))] = ids[:cut] + [2]
    seen = 0
    for inputs, targets, weights in data:
        for source, target, weight in zip(
            inputs["encoder_token_ids"].numpy(),
            targets.numpy(),
            weights.numpy(),
            strict=True,
        ):
            key = tuple(int(i) for i in source if i)
            assert [int(i) for i in target if i] == expected[key]
            assert weight.sum() == len(expected[key])
            seen += 1
    assert seen == len(sources) == len(expected)


@pytest.mark.large
def test_unlabelled_sources_join_the_labels_with_the_teachers_outputs():
    from tfaccel import tasks
    from tfaccel.distillation import teacher_dataset

    task = tasks.get_task("g2p", max_examples=300)
    keras.utils.set_random_seed(0)
    teacher = Seq2SeqTransformer.from_preset("tiny", **task.model_overrides())
    unlabelled = task.unlabelled_sources(limit=50)
    lines = []
    data = teacher_dataset(
        task,
        teacher,
        64,
        shuffle=False,
        log=lines.append,
        relabel=False,
        unlabelled=unlabelled,
    )
    assert lines == ["Sequence-level KD: the teacher labels 50 unlabelled sources"]
    encode = task.source_vocab.encode
    expected = {}
    for source, ids in zip(unlabelled, task.generate(teacher, unlabelled), strict=True):
        cut = min(ids.index(2) if 2 in ids else len(ids), task.max_generate_length - 1)
        expected.setdefault(tuple(encode(source)), []).append(ids[:cut] + [2])
    for source, phones in task.pairs("train"):  # references kept, not relabelled
        ids = task.target_vocab.encode(phones) + [2]
        expected.setdefault(tuple(encode(source)), []).append(ids)
    seen = []
    for inputs, targets, _ in data:
        for source, target in zip(
            inputs["encoder_token_ids"].numpy(), targets.numpy(), strict=True
        ):
            key = tuple(int(i) for i in source if i)
            assert [int(i) for i in target if i] in expected[key]
            seen.append(key)
    assert len(seen) == len(task.pairs("train")) + 50
    assert set(seen) == set(expected)


def test_distillation_trains_a_quantization_aware_student_with_its_callbacks():
    import tfaccel
    from tfaccel.quantization import _state

    teacher, student = _models()
    tfaccel.quantize_aware(student, targets=[r".*feedforward.*kernel"])
    distiller = Seq2SeqDistiller(teacher, student, alpha=0.5)
    _compile(distiller)
    callbacks = tfaccel.callbacks(distiller)
    assert [type(c).__name__ for c in callbacks] == ["QuantizationRanges"]
    ranges = dict(next(state for _, state in _state.find_states(student)).ranges())
    before = {name: np.array(r.count) for name, r in ranges.items()}
    distiller.fit(_data(), epochs=1, verbose=0, callbacks=callbacks)
    moved = [
        name
        for name, r in ranges.items()
        if not np.array_equal(before[name], np.array(r.count))
    ]
    assert moved  # the activation ranges were observed through the distiller
