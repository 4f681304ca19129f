"""Tests for ConstantSparsity and PolynomialDecay: tfmot's values, validation."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import pytest

from tfaccel.pruning import ConstantSparsity, PolynomialDecay

STEPS = 260  # every step 0..STEPS-1 is compared
CONFIGS = [
    ("ConstantSparsity", dict(target_sparsity=0.5, begin_step=0)),
    (
        "ConstantSparsity",
        dict(target_sparsity=0.8, begin_step=10, end_step=200, frequency=7),
    ),
    ("ConstantSparsity", dict(target_sparsity=0.3, begin_step=5, end_step=5)),
    (
        "PolynomialDecay",
        dict(
            initial_sparsity=0.0,
            final_sparsity=0.5,
            begin_step=0,
            end_step=100,
            frequency=10,
        ),
    ),
    (
        "PolynomialDecay",
        dict(
            initial_sparsity=0.2,
            final_sparsity=0.9,
            begin_step=13,
            end_step=211,
            power=2,
            frequency=1,
        ),
    ),
    (
        "PolynomialDecay",
        dict(
            initial_sparsity=0.7,
            final_sparsity=0.1,
            begin_step=3,
            end_step=250,
            power=1.5,
            frequency=4,
        ),
    ),
    (
        "PolynomialDecay",
        dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=0, end_step=1),
    ),
]
CLASSES = {"ConstantSparsity": ConstantSparsity, "PolynomialDecay": PolynomialDecay}

# Runs in a subprocess: importing tfmot loads tf_keras, kept out of this one.
_TFMOT = """
import json, sys
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_schedule
out = []
for name, kwargs in json.loads(sys.argv[1]):
    schedule = getattr(pruning_schedule, name)(**kwargs)
    rows = []
    for step in range(int(sys.argv[2])):
        update, sparsity = schedule(step)
        rows.append([bool(update.numpy()), float(sparsity.numpy())])
    out.append(rows)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tfmot_values():
    if importlib.util.find_spec("tensorflow_model_optimization") is None:
        pytest.skip("needs tfaccel[tfmot]: tensorflow-model-optimization")
    result = subprocess.run(
        [sys.executable, "-c", _TFMOT, json.dumps(CONFIGS), str(STEPS)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_same_values_as_tfmot_at_every_step(tfmot_values, index):
    name, kwargs = CONFIGS[index]
    schedule = CLASSES[name](**kwargs)
    ours = [list(schedule(step)) for step in range(STEPS)]
    assert ours == tfmot_values[index]
    assert any(update for update, _ in ours)


@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_last_update_step_agrees_with_stepping(index):
    name, kwargs = CONFIGS[index]
    schedule = CLASSES[name](**kwargs)
    for first, last in [(0, 0), (0, 3), (1, 4), (5, 8), (97, 103), (9, 300)]:
        updates = [s for s in range(first, last + 1) if schedule.should_update(s)]
        expected = updates[-1] if updates else None
        assert schedule.last_update_step(first, last) == expected, (first, last)


def test_polynomial_decay_endpoints():
    schedule = PolynomialDecay(0.1, 0.5, begin_step=10, end_step=20, frequency=5)
    assert schedule(0) == (False, pytest.approx(0.1))
    assert schedule(10) == (True, pytest.approx(0.1))
    assert schedule(15) == (True, pytest.approx(0.5 - 0.4 * 0.5**3))
    assert schedule(20) == (True, 0.5)
    assert schedule(25) == (False, 0.5)


@pytest.mark.parametrize(
    "cls, kwargs, words",
    [
        (ConstantSparsity, dict(target_sparsity=1.0), "target_sparsity"),
        (ConstantSparsity, dict(target_sparsity=-0.1), "target_sparsity"),
        (ConstantSparsity, dict(target_sparsity="0.5"), "target_sparsity"),
        (ConstantSparsity, dict(target_sparsity=0.5, begin_step=-1), "begin_step"),
        (
            ConstantSparsity,
            dict(target_sparsity=0.5, begin_step=5, end_step=4),
            "end_step",
        ),
        (ConstantSparsity, dict(target_sparsity=0.5, end_step=-2), "end_step"),
        (ConstantSparsity, dict(target_sparsity=0.5, frequency=0), "frequency"),
        (ConstantSparsity, dict(target_sparsity=0.5, frequency=1.5), "frequency"),
        (
            PolynomialDecay,
            dict(initial_sparsity=0.0, final_sparsity=1.0, begin_step=0, end_step=10),
            "final_sparsity",
        ),
        (
            PolynomialDecay,
            dict(initial_sparsity=-0.1, final_sparsity=0.5, begin_step=0, end_step=10),
            "initial_sparsity",
        ),
        (
            PolynomialDecay,
            dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=10, end_step=5),
            "end_step",
        ),
        (
            PolynomialDecay,
            dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=10, end_step=10),
            "end_step",
        ),
        (
            PolynomialDecay,
            dict(initial_sparsity=0.0, final_sparsity=0.5, begin_step=0, end_step=-1),
            "end_step",
        ),
    ],
)
def test_invalid_arguments_raise(cls, kwargs, words):
    with pytest.raises(ValueError, match=f"{words}.*Received: .*{words}"):
        cls(**kwargs)


@pytest.mark.parametrize(
    "schedule",
    [
        ConstantSparsity(0.25, begin_step=3, end_step=30, frequency=3),
        PolynomialDecay(0.1, 0.6, begin_step=2, end_step=40, power=2, frequency=4),
    ],
)
def test_serialization_round_trip(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    assert config["registered_name"] == f"tfaccel>{type(schedule).__name__}"
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    assert [restored(s) for s in range(50)] == [schedule(s) for s in range(50)]
