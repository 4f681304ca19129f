"""A pruning schedule whose sparsity rises fast, then levels off."""

import keras
from keras import ops

from tfaccel.pruning.pruning_schedule import PruningSchedule, check_sparsity


@keras.saving.register_keras_serializable(package="tfaccel")
class PolynomialDecay(PruningSchedule):
    """Raises sparsity from `initial_sparsity` to `final_sparsity` polynomially.

    The gradual pruning schedule of Zhu & Gupta, "To prune, or not to prune"
    (2017), https://arxiv.org/abs/1710.01878, with tfmot's arguments and
    values (float32 arithmetic, as tfmot's graph computes it):

        p = clip((step - begin_step) / (end_step - begin_step), 0, 1)
        sparsity = final + (initial - final) * (1 - p) ** power

    Unlike tfmot, `end_step == begin_step` is refused (tfmot divides by zero).

    Args:
        initial_sparsity: float in [0, 1). Sparsity at `begin_step`.
        final_sparsity: float in [0, 1). Sparsity from `end_step` on.
        begin_step: int. First step that updates masks.
        end_step: int. Last step that updates masks; must be > `begin_step`.
        power: number. Exponent of the decay.
        frequency: int. Update masks every this many steps.

    Example:

    ```python
    schedule = tfaccel.PolynomialDecay(0.0, 0.5, begin_step=0, end_step=1000)
    schedule(1000)  # (True, 0.5)
    ```
    """

    def __init__(
        self,
        initial_sparsity,
        final_sparsity,
        begin_step,
        end_step,
        power=3,
        frequency=100,
    ):
        super().__init__(begin_step, end_step, frequency)
        if end_step <= begin_step:
            raise ValueError(
                "`end_step` must be greater than `begin_step`. "
                f"Received: {end_step=}, {begin_step=}"
            )
        check_sparsity(initial_sparsity=initial_sparsity, final_sparsity=final_sparsity)
        if isinstance(power, bool) or not isinstance(power, int | float):
            raise ValueError(f"`power` must be a number. Received: {power=}")
        self.initial_sparsity = initial_sparsity
        self.final_sparsity = final_sparsity
        self.power = power

    def sparsity(self, step):
        # float32 keras.ops, in tfmot's order, so every value matches tfmot's.
        span = _f32(self.end_step - self.begin_step)
        p = ops.clip(ops.divide(_f32(int(step) - self.begin_step), span), 0.0, 1.0)
        decay = ops.power(ops.subtract(_f32(1.0), p), _f32(self.power))
        scale = _f32(self.initial_sparsity - self.final_sparsity)
        return float(ops.add(ops.multiply(scale, decay), _f32(self.final_sparsity)))

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "power": self.power,
            **super().get_config(),
        }


def _f32(value):
    return ops.convert_to_tensor(value, dtype="float32")
