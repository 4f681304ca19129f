"""Session set-up shared by every test.

The host CPU is split into two logical devices before TensorFlow runs any op,
so MirroredStrategy tests (`/cpu:0`, `/cpu:1`) stand in for two GPUs. Tests
that use no strategy run on `/cpu:0` as before.
"""

import os

import pytest
import tensorflow as tf

LOGICAL_CPUS = 2
LEGACY_KERAS = os.environ.get("TF_USE_LEGACY_KERAS")  # as the process began


def _split_cpu():
    cpus = tf.config.list_physical_devices("CPU")
    config = [tf.config.LogicalDeviceConfiguration()] * LOGICAL_CPUS
    try:
        tf.config.set_logical_device_configuration(cpus[0], config)
    except RuntimeError:
        pass  # TensorFlow already ran; MirroredStrategy tests then skip.


_split_cpu()


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs, shared by all tests.

    Every MirroredStrategy numbers its collective ops from the same start, so
    two strategies in one process clash ("shape mismatch in the collective
    instance 100"); tests share this one, which is also the one recipes get
    from `tfaccel.distribute.get_strategy("mirrored")`.
    """
    from tfaccel.distribute import get_strategy

    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < LOGICAL_CPUS:
        pytest.skip("needs two logical CPUs (tests/conftest.py sets them up)")
    strategy = get_strategy("mirrored")
    assert strategy.num_replicas_in_sync == LOGICAL_CPUS
    return strategy


@pytest.fixture(autouse=True)
def _legacy_keras_not_leaked():
    """Fails the test (or its fixtures) that set `TF_USE_LEGACY_KERAS`.

    tfmot sets it when imported (see `tfaccel/compat/_deps.py`); once set,
    `tf.keras` may resolve to Keras 2 in whichever test touches it next, and
    the failure would show up there, far from its cause.
    """
    yield
    value = os.environ.get("TF_USE_LEGACY_KERAS")
    if value != LEGACY_KERAS:
        os.environ.pop("TF_USE_LEGACY_KERAS", None)
        if LEGACY_KERAS is not None:
            os.environ["TF_USE_LEGACY_KERAS"] = LEGACY_KERAS
        pytest.fail(
            f"TF_USE_LEGACY_KERAS={value!r} was set in the test process by this "
            "test or a fixture it uses. Import tfmot through "
            "tfaccel.compat._deps.tfmot(), which puts the variable back, or in "
            "a subprocess."
        )
