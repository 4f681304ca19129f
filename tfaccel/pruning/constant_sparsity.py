"""A pruning schedule that holds one sparsity throughout."""

import keras
import numpy as np

from tfaccel.pruning.pruning_schedule import PruningSchedule, check_sparsity


@keras.saving.register_keras_serializable(package="tfaccel")
class ConstantSparsity(PruningSchedule):
    """Prunes to `target_sparsity` every `frequency` steps in a step range.

    Same arguments and values as tfmot's `ConstantSparsity`: at each update
    step the smallest-magnitude `target_sparsity` fraction of each target is
    zeroed (Zhu & Gupta, 2017, https://arxiv.org/abs/1710.01878). The
    sparsity is returned as a float32 value, as tfmot does.

    Args:
        target_sparsity: float in [0, 1). Fraction of weights set to zero.
        begin_step: int. First step that updates masks.
        end_step: int. Last step that may update masks; -1 means no end.
        frequency: int. Update masks every this many steps.

    Example:

    ```python
    schedule = tfaccel.ConstantSparsity(0.5, begin_step=0, frequency=100)
    schedule(200)  # (True, 0.5)
    ```
    """

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        super().__init__(begin_step, end_step, frequency)
        check_sparsity(target_sparsity=target_sparsity)
        self.target_sparsity = target_sparsity

    def sparsity(self, step):
        return float(np.float32(self.target_sparsity))

    def get_config(self):
        return {"target_sparsity": self.target_sparsity, **super().get_config()}
