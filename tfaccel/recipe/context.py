"""What a recipe stage tells the modifier appliers: one argument for all."""

import dataclasses
import typing


@dataclasses.dataclass(frozen=True)
class StageContext:
    """The stage a modifier is applied in.

    Every applier is called as `apply(model, modifier, context)` and reads
    what it needs from here: pruning converts epochs to steps with
    `steps_per_epoch` and `initial_step`, shrink calibrates on `task`,
    distillation needs the `teacher`. A new field costs no applier a change.

    Attributes:
        steps_per_epoch: optimizer steps in one epoch of the stage.
        initial_step: `optimizer.iterations` when the stage starts.
        task: the recipe's task (data for calibration), or None.
        teacher: the teacher model of a distillation stage, or None (a
            finished stage being rebuilt needs none).
        log: callable for one progress line.
    """

    steps_per_epoch: int
    initial_step: int = 0
    task: typing.Any = None
    teacher: typing.Any = None
    log: typing.Callable = print
