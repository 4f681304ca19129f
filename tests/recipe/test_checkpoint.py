"""Stage checkpoints (Keras weights files) hold every weight, slot and state."""

import json

import keras
import numpy as np
import pytest

import tfaccel
from tfaccel.core import registry
from tfaccel.recipe import checkpoint


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(4, name="out")(hidden)
    return keras.Model(inputs, outputs)


def _pruned_qat_model():
    model = _model()
    model = tfaccel.prune(
        model, targets=[r"hidden/kernel"], schedule=tfaccel.ConstantSparsity(0.5, 0)
    )
    model = tfaccel.quantize_aware(model, targets=[r".*kernel"])
    model.compile(optimizer="adam", loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 8)).astype("float32"), rng.normal(size=(64, 4)).astype(
        "float32"
    )


def _fit(model, epochs, initial_epoch=0, extra=()):
    x, y = _data()
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,
        verbose=0,
        callbacks=[*tfaccel.callbacks(model), *extra],
    )


def _state_arrays(model):
    return [
        keras.ops.convert_to_numpy(v)
        for v in [
            *model.variables,
            *registry.untracked_variables(model),
            *model.optimizer.variables,
        ]
    ]


def test_untracked_variables_are_the_pruning_and_qat_state():
    model = _pruned_qat_model()
    found = registry.untracked_variables(model)
    tracked = {id(v) for v in model.variables}
    assert found and not any(id(v) in tracked for v in found)
    names = {v.name for v in found}
    assert {"pruning_step", "pruning_mask"} <= names
    assert any(name.endswith("_min") for name in names)
    assert any(name.endswith("_max") for name in names)


def test_restore_reproduces_weights_optimizer_masks_and_ranges(tmp_path):
    model = _pruned_qat_model()
    _fit(model, 2, extra=[checkpoint.EpochCheckpoint(tmp_path / "ckpt", model)])
    expected = _state_arrays(model)
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert state["epoch"] == 2
    assert checkpoint.saved_epoch(tmp_path / "ckpt") == 2

    rebuilt = _pruned_qat_model()  # fresh weights, masks of ones, no slots
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(
            _state_arrays(rebuilt), expected[: len(model.variables)], strict=False
        )
    )
    assert checkpoint.restore(tmp_path / "ckpt", rebuilt) == 2
    restored = _state_arrays(rebuilt)
    assert len(restored) == len(expected)
    for got, want in zip(restored, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    # The callbacks' Python-side step came back too.
    (_, saved), (_, loaded) = (
        tfaccel.pruning._state.find_states(m)[0] for m in (model, rebuilt)
    )
    assert loaded.last_step == saved.last_step > 0


def test_resumed_training_matches_uninterrupted_training(tmp_path):
    whole = _pruned_qat_model()
    _fit(whole, 3)

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt  # after the checkpoint of epoch 1

    first = _pruned_qat_model()
    with pytest.raises(KeyboardInterrupt):
        _fit(
            first,
            3,
            extra=[checkpoint.EpochCheckpoint(tmp_path / "ckpt", first), Kill()],
        )
    assert checkpoint.saved_epoch(tmp_path / "ckpt") == 1
    resumed = _pruned_qat_model()
    epoch = checkpoint.restore(tmp_path / "ckpt", resumed)
    _fit(resumed, 3, initial_epoch=epoch)
    for got, want in zip(_state_arrays(resumed), _state_arrays(whole), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_restore_refuses_a_different_model(tmp_path):
    model = _pruned_qat_model()
    _fit(model, 1, extra=[checkpoint.EpochCheckpoint(tmp_path / "ckpt", model)])
    other = _model()  # no pruning, no QAT: fewer variables
    other.compile(optimizer="adam", loss="mse")
    from tfaccel.errors import UserError

    with pytest.raises(UserError, match="does not fit the rebuilt stage.*--restart"):
        checkpoint.restore(tmp_path / "ckpt", other)


def test_a_save_replaces_the_previous_checkpoint_whole(tmp_path):
    model = _pruned_qat_model()
    _fit(model, 2, extra=[checkpoint.EpochCheckpoint(tmp_path / "ckpt", model)])
    # Only the published folder is left: no temporary or old siblings.
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "model.weights.h5",
        "state.json",
    ]
