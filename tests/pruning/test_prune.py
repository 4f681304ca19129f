"""Tests for tfaccel.prune on the tiny reference encoder-decoder."""

import zipfile

import h5py
import keras
import numpy as np
import pytest
from pruning_checks import (
    assert_exact_sparsity,
    compile_for_test,
    fit_mlp,
    matching,
    run_pruning_test,
    seq2seq_data,
    small_mlp,
    tiny_model,
    zeros,
)

import tfaccel
from tfaccel.errors import UserError
from tfaccel.pruning import _state

TARGETS = ["re:.*(attention|feedforward).*kernel"]


def _fit(model, callbacks, steps=8, steps_per_execution=1, optimizer=None):
    x, y = seq2seq_data(model, batch=4 * steps)
    compile_for_test(model, steps_per_execution, optimizer)
    model.fit(x, y, batch_size=4, verbose=0, shuffle=False, callbacks=callbacks)


def _fit_then_continue(model, callbacks):
    _fit(model, callbacks)  # steps 0..7; the schedule ends at step 6
    targets = matching(model, TARGETS)
    assert_exact_sparsity(targets, 0.5)
    before = [keras.ops.convert_to_numpy(v) for v in targets]
    _fit(model, callbacks, steps_per_execution=4, optimizer=model.optimizer)
    assert int(model.optimizer.iterations.numpy()) == 16
    for variable, old in zip(targets, before, strict=True):
        new = keras.ops.convert_to_numpy(variable)
        np.testing.assert_array_equal(new == 0, old == 0)  # same zeros, still 0
        assert not np.allclose(new[old != 0], old[old != 0])  # it trained


def test_polynomial_decay_prunes_exactly_and_keeps_zeros_through_training():
    model = tiny_model()
    schedule = tfaccel.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=6, frequency=2)
    targets = run_pruning_test(model, _fit_then_continue, TARGETS, schedule, 0.5)
    assert len(targets) == 32  # encoder 2 x (4 + 2), decoder 2 x (8 + 2)
    assert not any("embeddings" in v.path or "gamma" in v.path for v in targets)


def test_a_new_optimizer_after_the_schedule_ended_keeps_the_final_masks():
    # A recipe's QAT stage compiles a new optimizer after the pruning stage:
    # its step 0 must not replay the finished schedule from sparsity 0.
    # (`fit_mlp` compiles a new Adam at every call.)
    model = small_mlp()
    schedule = tfaccel.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=6, frequency=2)
    tfaccel.prune(model, [".*kernel"], schedule)
    fit_mlp(model, tfaccel.callbacks(model))  # steps 0..7, past the end
    targets = matching(model, [".*kernel"])
    before = [keras.ops.convert_to_numpy(v) == 0 for v in targets]
    ((_, state),) = _state.find_states(model)
    seen = []
    spy = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(
            [float(np.mean(keras.ops.convert_to_numpy(v) == 0)) for v in targets]
        )
    )
    fit_mlp(model, tfaccel.callbacks(model) + [spy])
    assert int(model.optimizer.iterations.numpy()) == 8  # a new optimizer
    # Every step of the new fit trains under the final masks.
    assert seen == [[0.5, 0.5]] * 8
    assert_exact_sparsity(targets, 0.5)
    for variable, zero in zip(targets, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable) == 0, zero)
    assert state.last_step == 8  # the first fit's last, not the new optimizer's
    # Before its end, a restarted schedule is followed again (as tfmot does).
    fresh = small_mlp()
    tfaccel.prune(fresh, [".*kernel"], schedule)
    fit_mlp(fresh, tfaccel.callbacks(fresh), steps=4)
    fit_mlp(fresh, tfaccel.callbacks(fresh))
    ((_, state),) = _state.find_states(fresh)
    assert state.last_step == 8
    assert_exact_sparsity(matching(fresh, [".*kernel"]), 0.5)


def test_steps_per_execution_still_reaches_final_sparsity():
    model = small_mlp()
    schedule = tfaccel.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=6, frequency=1)
    tfaccel.prune(model, [".*kernel"], schedule)
    ((_, state),) = _state.find_states(model)
    seen = []
    spy = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: seen.append(state.targets[0].sparsity)
    )
    fit_mlp(model, tfaccel.callbacks(model) + [spy], steps=12, steps_per_execution=4)
    assert seen == [0.0, schedule.sparsity(4), 0.5]  # update at 6 is caught at 8
    assert_exact_sparsity(matching(model, [".*kernel"]), 0.5)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_training_without_the_callback_names_it_on_the_first_line(jit_compile):
    # Raised while fit traces the train step, not as a graph error; under
    # XLA too, which drops the in-graph Assert.
    model = small_mlp()
    tfaccel.prune(model, [".*kernel"], tfaccel.ConstantSparsity(0.5))
    model.compile("adam", "mse", jit_compile=jit_compile)
    x = np.ones((8, 16), "float32")
    with pytest.raises(UserError) as info:
        model.fit(x, np.ones((8, 8), "float32"), batch_size=4, verbose=0)
    first = str(info.value).splitlines()[0]
    assert first.startswith("Pruning requires the tfaccel.pruning.UpdatePruningStep")
    assert "tfaccel.callbacks(model)" in first


def test_a_schedule_that_never_reaches_its_end_warns_when_applied():
    # frequency=100 and end_step=50: the only update is step 0, at 0%.
    schedule = tfaccel.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=50)
    with pytest.warns(UserWarning, match="never reaches its final sparsity 50.0%"):
        tfaccel.prune(small_mlp(), [".*kernel"], schedule)
    on_grid = tfaccel.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=50, frequency=10)
    assert on_grid.shortfall() is None
    assert tfaccel.ConstantSparsity(0.5, end_step=50).shortfall() is None


def test_regex_matching_nothing_names_it_and_lists_paths():
    model = tiny_model()
    with pytest.raises(UserError) as info:
        tfaccel.prune(model, [".*kernel", "re:.*no_such_layer.*"], _constant())
    message = str(info.value)
    assert "'re:.*no_such_layer.*' matches no trainable variable" in message
    assert "encoder_embedding/token_embedding/embeddings" in message
    assert message.endswith("Received: target='re:.*no_such_layer.*'")
    assert not _state.find_states(model)
    assert all(v.constraint is None for v in model.trainable_weights)


@pytest.mark.parametrize(
    "targets, words",
    [
        ("re:.*kernel", "non-empty list"),
        ([], "non-empty list"),
        (["re:(unclosed"], "Invalid target regex"),
    ],
)
def test_bad_targets_raise(targets, words):
    with pytest.raises(UserError, match=words):
        tfaccel.prune(tiny_model(), targets, _constant())


def test_pruning_twice_raises_until_stripped():
    model = tiny_model()
    tfaccel.prune(model, TARGETS, _constant())
    with pytest.raises(UserError, match="already pruned.*tfaccel.strip"):
        tfaccel.prune(model, [".*lm_head.*kernel"], _constant())
    tfaccel.strip(model)
    tfaccel.prune(model, [".*lm_head.*kernel"], _constant())
    assert len(_state.find_states(model)[0][1].targets) == 1


def test_pruning_a_model_inside_a_pruned_model_raises():
    inner = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, name="d")])
    outer = keras.Sequential([keras.Input((8,)), inner])
    tfaccel.prune(inner, [".*kernel"], _constant())
    with pytest.raises(UserError, match="already pruned"):
        tfaccel.prune(outer, [".*kernel"], _constant())


def test_embeddings_and_layer_norms_are_pruned_only_when_named():
    model = tiny_model()
    assert not any(
        "embeddings" in v.path or "gamma" in v.path
        for v in matching(model, [".*kernel"])
    )
    named = ["encoder_embedding/token_embedding/embeddings", ".*layer_norm/gamma"]
    tfaccel.prune(model, named, _constant())
    ((_, state),) = _state.find_states(model)
    assert len(state.targets) == 1 + 10  # one embedding, 10 layer norms
    state.update_masks(0.5)  # what the callback does at an update step
    assert_exact_sparsity(matching(model, named), 0.5)


def test_structured_pruning_of_a_vector_or_an_int_variable_raises():
    model = tiny_model()
    with pytest.raises(UserError, match="2 or more axes.*Received: shape=\\(16,\\)"):
        tfaccel.prune(model, [".*gamma"], _constant(), structure="2:4")
    with pytest.raises(UserError, match="2 or more axes"):
        tfaccel.prune(model, [".*gamma"], _constant(), block=(1, 4))
    inputs = keras.Input((4,))
    int_model = keras.Model(inputs, _WithIntWeight()(inputs))
    with pytest.raises(UserError, match="Only float variables.*int32"):
        tfaccel.prune(int_model, [".*counter"], _constant())


def test_state_is_not_a_layer_weight_but_is_saved_beside_them(tmp_path):
    model = tiny_model()
    model.save(tmp_path / "plain.keras")
    weights = len(model.weights)
    tfaccel.prune(model, TARGETS, _constant())
    assert len(model.weights) == weights and len(model.variables) == weights
    model.save(tmp_path / "pruned.keras")
    (plain_names, plain), (names, pruned) = (
        _archive(tmp_path / f"{name}.keras") for name in ("plain", "pruned")
    )
    assert names == plain_names
    extra = [key for key, _ in pruned if (key, _) not in plain]
    # One entry of the model's technique state: step, a mask per target, counters.
    assert all(key.startswith("_tfaccel_state") for key in extra)
    stored = [key for key in extra if key.startswith("_tfaccel_state/vars/")]
    assert len(stored) == 1 + len(matching(model, TARGETS)) + 1


def test_prune_returns_the_same_model_and_keeps_values():
    model = tiny_model()
    before = [keras.ops.convert_to_numpy(v) for v in model.weights]
    assert tfaccel.prune(model, TARGETS, _constant()) is model
    for variable, old in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), old)
    assert sum(zeros(v) for v in matching(model, TARGETS)) == 0  # masks wait


class _WithIntWeight(keras.layers.Layer):
    def build(self, input_shape):
        self.counter = self.add_weight((4, 4), dtype="int32", name="counter")

    def call(self, inputs):
        return inputs


def _constant():
    return tfaccel.ConstantSparsity(0.5, begin_step=0, frequency=1)


def _archive(path):
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        archive.extract("model.weights.h5", path.parent / path.stem)
    keys = []
    with h5py.File(path.parent / path.stem / "model.weights.h5") as weights:
        weights.visititems(lambda name, item: keys.append((name, item.__class__)))
    return names, sorted(keys, key=str)


def test_public_api():
    import tfaccel.pruning as pruning
    from tfaccel.techniques import summary

    assert tfaccel.prune is pruning.prune
    assert tfaccel.summary is summary  # every technique's table, pruning's too
    assert tfaccel.PolynomialDecay is pruning.PolynomialDecay
    assert tfaccel.ConstantSparsity is pruning.ConstantSparsity
    assert callable(tfaccel.callbacks) and callable(tfaccel.strip)
    assert set(tfaccel.__all__) <= set(dir(tfaccel))
