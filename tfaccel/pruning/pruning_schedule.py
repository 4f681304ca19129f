"""The base class of pruning schedules: when to update masks, and to what."""

import numpy as np


class PruningSchedule:
    """Says, for each training step, whether to update masks and to what sparsity.

    A schedule is called with the optimizer step and returns
    `(should_update, sparsity)` as a Python `bool` and `float`. Masks are
    updated in `[begin_step, end_step]` every `frequency` steps (`end_step=-1`
    means for ever), as in tfmot and in Zhu & Gupta, "To prune, or not to
    prune" (2017), https://arxiv.org/abs/1710.01878.

    Args:
        begin_step: int. First step that updates masks.
        end_step: int. Last step that may update masks, or -1 for no end.
        frequency: int. Update masks every this many steps.

    Example:

    ```python
    should_update, sparsity = schedule(step)
    ```
    """

    def __init__(self, begin_step=0, end_step=-1, frequency=100):
        _check_int(begin_step=begin_step, end_step=end_step, frequency=frequency)
        if begin_step < 0:
            raise ValueError(f"`begin_step` must be >= 0. Received: {begin_step=}")
        if end_step < -1 or (end_step != -1 and end_step < begin_step):
            raise ValueError(
                "`end_step` must be -1 (no end) or >= `begin_step`. "
                f"Received: {end_step=}, {begin_step=}"
            )
        if frequency < 1:
            raise ValueError(f"`frequency` must be >= 1. Received: {frequency=}")
        self.begin_step = int(begin_step)
        self.end_step = int(end_step)
        self.frequency = int(frequency)

    def __call__(self, step):
        return self.should_update(step), self.sparsity(step)

    def should_update(self, step):
        """Returns whether masks are updated at `step` (a Python `bool`)."""
        step = int(step)
        in_range = step >= self.begin_step and (
            self.end_step < 0 or step <= self.end_step
        )
        return in_range and (step - self.begin_step) % self.frequency == 0

    def sparsity(self, step):
        """Returns the target sparsity at `step`, a float in [0, 1)."""
        raise NotImplementedError

    def last_update_step(self, first, last):
        """Returns the latest step in `[first, last]` that updates masks, or None.

        The callback runs once per `steps_per_execution` steps; this finds the
        update it would otherwise skip. A subclass that changes
        `should_update` must override this too.
        """
        if self.end_step >= 0:
            last = min(last, self.end_step)
        if last < max(first, self.begin_step):
            return None
        step = last - (last - self.begin_step) % self.frequency
        return step if step >= first else None

    def final_sparsity_at(self):
        """Returns the sparsity the schedule ends at: `sparsity(end_step)`.

        None for a schedule with no end (`end_step=-1`).
        """
        return None if self.end_step < 0 else self.sparsity(self.end_step)

    def shortfall(self):
        """Says when the schedule's updates never reach its final sparsity.

        Masks change only at update steps (every `frequency` steps from
        `begin_step`). When `end_step` is not one of them, the last update
        comes earlier and at a lower sparsity; with the default
        `frequency=100` and a short run, that can be step 0 at sparsity 0.

        Returns:
            None when the last update reaches the final sparsity, else a
            one-line message naming the last update step, its sparsity and
            how to fix the schedule.
        """
        final = self.final_sparsity_at()
        if final is None:
            return None
        last = self.last_update_step(self.begin_step, self.end_step)
        reached = self.sparsity(last)
        if reached >= final - 1e-6:
            return None
        return (
            f"This pruning schedule never reaches its final sparsity {final:.1%}: "
            f"masks change every {self.frequency} steps from step "
            f"{self.begin_step}, so the last update is at step {last} (sparsity "
            f"{reached:.1%}), before end_step {self.end_step}. Make end_step - "
            "begin_step a multiple of frequency, or lower frequency. Received: "
            f"begin_step={self.begin_step}, end_step={self.end_step}, "
            f"frequency={self.frequency}"
        )

    def get_config(self):
        return {
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def check_sparsity(**values):
    """Raises `ValueError` unless every value is a number in [0, 1)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"`{name}` must be a number. Received: {name}={value!r}")
        if not 0.0 <= value < 1.0:
            raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value}")


def _check_int(**values):
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"`{name}` must be an int. Received: {name}={value!r}")
