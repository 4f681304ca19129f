"""One stage of a recipe: apply its modifiers, fine-tune, evaluate.

A stage's folder keeps its epoch checkpoint, and once it is finished
`result.json`. A finished stage is rebuilt (its modifiers applied again,
without a teacher) and its weights restored, not trained again; a stage with
a checkpoint continues after its last saved epoch.
"""

import dataclasses
import importlib
import json
import time

from tfaccel import tasks
from tfaccel._io import atomic_file
from tfaccel.recipe import baseline as baseline_lib
from tfaccel.recipe.context import StageContext
from tfaccel.recipe.progress import RunProgress, StopOnNonFiniteLoss
from tfaccel.recipe.registry import WRAPS_FOR_TRAINING
from tfaccel.recipe.sizes import model_size


def applier(modifier):
    """Returns the function that applies `modifier` to a model.

    Each modifier config names its applier (`Modifier.applier`), so a new
    technique registers itself without changes here.
    """
    module, function = type(modifier).applier.split(":")
    return getattr(importlib.import_module(module), function)


def run_stage(
    model,
    stage,
    task,
    config,
    folder,
    log,
    teacher_path=None,
    progress=None,
    read_folder=...,
):
    """Applies a stage's modifiers, fine-tunes, evaluates; returns the model.

    A `distillation` modifier (at most one per stage, as the schema checks)
    loads its teacher first, and for sequence-level KD the teacher's
    training data, which the other modifiers' schedules then count in; it
    wraps the finished student in a `Seq2SeqDistiller`, which the stage
    fits before going on with the student.

    Checkpoints and `result.json` are read from `read_folder` (default:
    `folder`; a non-chief worker reads the chief's; None: start afresh) and
    written to `folder`.

    Runs under the strategy whose scope it is called in: the data are
    split over its replicas.

    Returns:
        `(model, result)`: the student (not stripped) and the stage's
        metrics dict.
    """
    import tensorflow as tf

    from tfaccel.recipe import checkpoint

    progress = progress or RunProgress(stage.epochs, log)
    read_folder = folder if read_folder is ... else read_folder
    finished = None
    if read_folder is not None and (read_folder / "result.json").is_file():
        finished = json.loads((read_folder / "result.json").read_text())
    strategy = tf.distribute.get_strategy()
    train = task.dataset("train", config.batch_size, shuffle=True, seed=config.seed)
    train = baseline_lib.for_replicas(train, strategy.num_replicas_in_sync)
    teacher = None
    if finished is None:
        teacher, train = _teacher_and_data(
            stage, task, config, train, teacher_path, log
        )
        steps = stage.steps_per_epoch or baseline_lib.count_batches(train)
    else:
        steps = finished["steps_per_epoch"]
    model, trained = _apply_modifiers(model, stage, steps, task, teacher, log)
    restore_from = None if read_folder is None else read_folder / "checkpoint"
    if finished is not None:
        checkpoint.restore(restore_from, model, with_optimizer=False)
        progress.skip(stage.epochs)
        log(f"Stage '{stage.name}' finished in an earlier run; restored its weights")
        return model, finished["result"]
    if stage.steps_per_epoch:
        # Epochs of `steps` batches from an endless stream, reshuffled on
        # each pass: the same steps whatever the data's size.
        train = train.repeat()
    else:
        train = train.apply(tf.data.experimental.assert_cardinality(steps))
    tune = dataclasses.replace(config, learning_rate=stage.learning_rate)
    baseline_lib.compile_model(trained, tune, steps * stage.epochs)
    initial_epoch = 0
    if restore_from is not None and checkpoint.saved_epoch(restore_from) is not None:
        initial_epoch = checkpoint.restore(restore_from, model, trained)
        progress.skip(initial_epoch)
        log(
            f"Stage '{stage.name}': resuming after epoch {initial_epoch} of "
            f"{stage.epochs}"
        )
    log(
        f"Stage '{stage.name}': {stage.epochs} epoch(s), "
        f"{[m.type for m in stage.modifiers]}"
    )
    start = time.perf_counter()
    if initial_epoch < stage.epochs:
        _fit(model, trained, stage, train, steps, initial_epoch, folder, progress)
    test = task.evaluate(model, "test")
    log(f"Stage '{stage.name}' test: {tasks.format_metrics(test)}")
    result = {
        "name": stage.name,
        "test": test,
        "seconds": time.perf_counter() - start,
        "steps_per_epoch": steps,
        "optimizer_steps": int(trained.optimizer.iterations.numpy()),
        **model_size(model),
    }
    if initial_epoch:
        result["resumed_after_epoch"] = initial_epoch
    with atomic_file(folder / "result.json") as tmp:
        tmp.write_text(json.dumps({"steps_per_epoch": steps, "result": result}))
    return model, result


def _teacher_and_data(stage, task, config, train, teacher_path, log):
    # Before the other modifiers: their schedules count this data's steps.
    from tfaccel.distillation import recipe as distillation

    distilled = [m for m in stage.modifiers if m.type == "distillation"]
    if not distilled:
        return None, train
    teacher = distillation.load_teacher(distilled[0], teacher_path, log=log)
    data = distillation.training_data(distilled[0], teacher, task, config, log)
    return teacher, train if data is None else data


def _apply_modifiers(model, stage, steps, task, teacher, log):
    """Returns `(student, fitted)`: the changed model and what `fit` trains.

    Shrinking and factorizing build new layers, so they come before pruning,
    clustering and QAT, which wrap weights; distillation wraps the finished
    student for training, so it comes last (`Modifier.order`). Without a
    teacher (a finished stage being rebuilt) distillation is skipped.
    """
    context = StageContext(steps, task=task, teacher=teacher, log=log)
    fitted = model
    for modifier in sorted(stage.modifiers, key=lambda m: type(m).order):
        result = applier(modifier)(model, modifier, context)
        if type(modifier).order >= WRAPS_FOR_TRAINING:
            fitted = result
        else:
            model = fitted = result
    return model, fitted


def _fit(model, fitted, stage, train, steps, initial_epoch, folder, progress):
    import keras

    import tfaccel
    from tfaccel.recipe import checkpoint

    logs = str(folder.parent / "logs" / stage.name)
    fitted.fit(
        train,
        epochs=stage.epochs,
        initial_epoch=initial_epoch,
        callbacks=[
            *tfaccel.callbacks(model, log_dir=logs),
            keras.callbacks.TensorBoard(log_dir=logs),
            checkpoint.EpochCheckpoint(
                folder / "checkpoint", model, None if fitted is model else fitted
            ),
            progress.callback(f"stage '{stage.name}'"),
            StopOnNonFiniteLoss(f"stage '{stage.name}'"),
        ],
        shuffle=False,
        verbose="auto",
        steps_per_epoch=steps if stage.steps_per_epoch else None,
    )
