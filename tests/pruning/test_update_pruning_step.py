"""Tests for the UpdatePruningStep callback: steps, masks and TensorBoard."""

import numpy as np
import pytest
import tensorflow as tf
from pruning_checks import fit_mlp, small_mlp, zeros

import tfaccel
from tfaccel.errors import UserError
from tfaccel.pruning import UpdatePruningStep, _state


def test_callbacks_returns_the_pruning_callback_only_for_pruned_models():
    model = small_mlp()
    assert tfaccel.callbacks(model) == []
    tfaccel.prune(model, [".*kernel"], tfaccel.ConstantSparsity(0.5))
    (callback,) = tfaccel.callbacks(model, log_dir="logs")
    assert isinstance(callback, UpdatePruningStep) and callback.log_dir == "logs"


def test_callback_on_an_unpruned_model_raises():
    with pytest.raises(UserError, match="call tfaccel.prune"):
        fit_mlp(small_mlp(), [UpdatePruningStep()], steps=1)


def test_masks_follow_the_schedule_and_step_tracks_the_optimizer():
    model = small_mlp()
    schedule = tfaccel.PolynomialDecay(0.0, 0.5, begin_step=2, end_step=6, frequency=2)
    tfaccel.prune(model, ["mlp/hidden/kernel"], schedule)
    ((_, state),) = _state.find_states(model)
    assert int(state.step.numpy()) == -1
    fit_mlp(model, tfaccel.callbacks(model), steps=4)  # steps 0..3: update at 2
    # The update due at step 4, after the last batch, is made at train end:
    # a schedule that ends with the last epoch reaches its final sparsity.
    assert int(state.step.numpy()) == 4
    assert zeros(state.targets[0].variable) == round(schedule.sparsity(4) * 512) > 0
    assert zeros(state.targets[0].mask) == zeros(state.targets[0].variable)
    assert state.targets[0].updates == 2
    fit_mlp(model, tfaccel.callbacks(model), steps=4)  # new optimizer: 0..3 again
    assert state.targets[0].updates == 4  # the schedule starts over, as in tfmot
    assert zeros(state.targets[0].variable) == round(schedule.sparsity(4) * 512)


def test_tensorboard_gets_per_variable_sparsity(tmp_path):
    model = small_mlp()
    tfaccel.prune(model, [".*kernel"], tfaccel.ConstantSparsity(0.5, frequency=1))
    fit_mlp(model, tfaccel.callbacks(model, log_dir=tmp_path), steps=2, epochs=2)
    (events,) = tmp_path.glob("events.out.tfevents.*")
    scalars = {}
    for event in tf.compat.v1.train.summary_iterator(str(events)):
        for value in event.summary.value:
            scalars.setdefault(value.tag, []).append(
                (event.step, float(tf.make_ndarray(value.tensor)))
            )
    assert set(scalars) == {
        "pruning/mlp/hidden/kernel",
        "pruning/mlp/out/kernel",
        "pruning/total",
    }
    for tag, points in scalars.items():
        assert points == [(2, 0.5), (4, 0.5)], tag
    np.testing.assert_equal(tfaccel.summary(model, print_fn=len)[-1]["sparsity"], 0.5)
