"""Session set-up shared by every test.

The host CPU is split into two logical devices before TensorFlow runs any op,
so MirroredStrategy tests (`/cpu:0`, `/cpu:1`) stand in for two GPUs. Tests
that use no strategy run on `/cpu:0` as before.
"""

import pytest
import tensorflow as tf

LOGICAL_CPUS = 2


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
