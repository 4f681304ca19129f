"""Keras's checkpoint callbacks keep technique state with no tfaccel code.

`ModelCheckpoint` (full `.keras` files and weights only) and
`BackupAndRestore` see a pruned and quantization-aware model as any other:
its masks, step, ranges and counters travel in the files they write. The
BackupAndRestore test kills a real training process mid-epoch and resumes it
in a new one, to the result of a run that was never interrupted.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from technique_checks import functional_mlp, mlp_data, numpy

import tfaccel
from tfaccel.core import registry

TARGETS = ["hidden/kernel", "out/kernel"]


def _pruned_and_quantized():
    model = functional_mlp()
    schedule = tfaccel.PolynomialDecay(
        0.0, 0.75, begin_step=0, end_step=24, frequency=2
    )
    tfaccel.prune(model, TARGETS, schedule)
    tfaccel.quantize_aware(model, targets=TARGETS)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def _state(model):
    return (
        [numpy(v) for v in model.weights],
        [numpy(v) for v in registry.untracked_variables(model)],
        registry.counters(model),
    )


def _assert_same(got, want):
    assert got[2] == want[2]
    for mine, theirs in zip(got[0] + got[1], want[0] + want[1], strict=True):
        np.testing.assert_array_equal(mine, theirs)


class _Snapshot(keras.callbacks.Callback):
    """Keeps the state at the end of each epoch (after the checkpoint's save)."""

    def __init__(self):
        super().__init__()
        self.states = []

    def on_epoch_end(self, epoch, logs=None):
        self.states.append(_state(self.model))


def test_model_checkpoint_keras_files_reload_mid_technique(tmp_path):
    model = _pruned_and_quantized()
    x, y = mlp_data()
    snapshot = _Snapshot()
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "epoch{epoch}.keras"))
    callbacks = [*tfaccel.callbacks(model), checkpoint, snapshot]
    model.fit(
        x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=callbacks
    )
    first = keras.saving.load_model(tmp_path / "epoch1.keras", safe_mode=True)
    _assert_same(_state(first), snapshot.states[0])
    assert int(numpy(first.optimizer.iterations)) == 8
    # Pruning went on after epoch 1: the two files differ.
    second = keras.saving.load_model(tmp_path / "epoch2.keras", safe_mode=True)
    assert second.get_layer("hidden").kernel.numpy().tolist() != (
        first.get_layer("hidden").kernel.numpy().tolist()
    )


def test_model_checkpoint_weights_load_into_the_same_techniques(tmp_path):
    model = _pruned_and_quantized()
    x, y = mlp_data()
    snapshot = _Snapshot()
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "last.weights.h5"), save_weights_only=True
    )
    callbacks = [*tfaccel.callbacks(model), checkpoint, snapshot]
    model.fit(
        x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=callbacks
    )
    fresh = _pruned_and_quantized()
    fresh.load_weights(tmp_path / "last.weights.h5")
    _assert_same(_state(fresh), snapshot.states[-1])


def test_weights_of_other_techniques_are_refused_in_one_line(tmp_path):
    model = _pruned_and_quantized()
    model.save_weights(tmp_path / "w.weights.h5")
    other = functional_mlp()
    tfaccel.prune(other, ["hidden/kernel"], tfaccel.ConstantSparsity(0.5, 0))
    with pytest.raises(ValueError, match="saved technique state has"):
        other.load_weights(tmp_path / "w.weights.h5")


RUN = """
import json, os, signal, sys
import keras, numpy as np
import tfaccel
from tfaccel.core import registry
from test_technique_checkpoints import _pruned_and_quantized, _state
from technique_checks import mlp_data

backup, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])


class Kill(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


model = _pruned_and_quantized()
x, y = mlp_data()
epochs = []
seen = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs.append(e))
backup_callback = keras.callbacks.BackupAndRestore(backup)
callbacks = [backup_callback, *tfaccel.callbacks(model), Kill(), seen]
model.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0, callbacks=callbacks)
weights, untracked, counters = _state(model)
np.savez(out, *(weights + untracked))
with open(out + ".json", "w") as f:
    json.dump({"counters": counters, "epochs": epochs}, f)
"""


def _run(tmp_path, backup, out, kill_at):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    command = [sys.executable, "-c", textwrap.dedent(RUN), backup, out, str(kill_at)]
    return subprocess.run(command, env=env, cwd=tmp_path, timeout=300).returncode


def _result(out):
    arrays = np.load(out + ".npz")
    return [arrays[f"arr_{i}"] for i in range(len(arrays))], json.loads(
        Path(out + ".json").read_text()
    )


@pytest.mark.large
def test_backup_and_restore_resumes_a_killed_fit_to_the_uninterrupted_result(
    tmp_path,
):
    backup, out = str(tmp_path / "backup"), str(tmp_path / "resumed")
    # Killed mid-epoch 3 (8 steps an epoch): the backup holds epoch 2's end.
    assert _run(tmp_path, backup, out, kill_at=20) == -signal.SIGKILL
    assert not Path(out + ".npz").exists()
    assert _run(tmp_path, backup, out, kill_at=-1) == 0
    straight = str(tmp_path / "straight")
    assert _run(tmp_path, str(tmp_path / "other"), straight, kill_at=-1) == 0
    (resumed, resumed_log), (want, want_log) = _result(out), _result(straight)
    assert resumed_log["epochs"] == [2, 3]  # it went on; it did not start over
    assert want_log["epochs"] == [0, 1, 2, 3]
    assert resumed_log["counters"] == want_log["counters"]
    # 4 epochs of 8 steps; the callback's last update is at the end of fit.
    assert resumed_log["counters"]["pruning"][0]["last_step"] == 32
    for mine, theirs in zip(resumed, want, strict=True):
        np.testing.assert_array_equal(mine, theirs)
