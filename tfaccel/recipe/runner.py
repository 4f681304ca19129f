"""Runs a validated recipe: baseline, stages, then the published run folder.

The steps live in their own modules: the baseline cache
(`baseline_cache`), a stage's modifiers, fit and checkpoints (`stage`), the
resume folder of a killed run (`resume`) and the run folder with its
exports, benchmark and report (`publish`). This module puts them in order
and handles the strategy and worker roles around them.
"""

import pathlib
import shutil
import time

from tfaccel import tasks
from tfaccel._io import exclusive, scratch_dir
from tfaccel.bench.report import print_summary
from tfaccel.distribute import (
    get_strategy,
    in_scope,
    is_chief,
    is_multi_worker,
    lost_worker_message,
    out_of_scope,
)
from tfaccel.errors import UserError, WorkerLostError
from tfaccel.recipe.baseline_cache import (
    baseline_config,
    baseline_folder,
    ensure_baseline,
)
from tfaccel.recipe.progress import RunProgress
from tfaccel.recipe.publish import publish
from tfaccel.recipe.registry import registered_modifiers
from tfaccel.recipe.resume import resume_folder
from tfaccel.recipe.sizes import model_size
from tfaccel.recipe.stage import run_stage


def run_recipe(recipe, root=".", log=print, restart=False):
    """Runs `recipe` and returns the run's metrics dict.

    Stages save a checkpoint at every epoch end into the hidden resume
    folder `<output_dir>/.<name>.resume/` (`tfaccel.recipe.checkpoint`). If
    a run of the same recipe was killed, the next run continues from the
    last finished epoch, and finished stages are restored, not redone. The
    run folder is published only when everything succeeded; then the
    resume folder is removed.

    Under a `distribute` strategy, the baseline (when not cached) and the
    stages train on every replica, with `baseline.batch_size` examples per
    replica. In a multi-worker job every worker runs this function; only
    the chief (worker 0) writes the baseline, the checkpoints and the run
    folder, and the other workers read the chief's checkpoints to resume.

    Args:
        recipe: a validated `tfaccel.recipe.schema.Recipe`.
        root: folder the recipe's relative paths are taken from.
        log: callable for progress lines.
        restart: True to discard a killed run's checkpoints and start afresh.

    Raises:
        WorkerLostError: a worker of a multi-worker job stopped mid-run.
    """
    import tensorflow as tf

    _check_supported(recipe)
    strategy = get_strategy(
        recipe.distribute.strategy, timeout=recipe.distribute.timeout_seconds
    )
    try:
        if is_chief(strategy):
            # One process runs a recipe at a time: a second would resume
            # the first's live checkpoints and publish over it.
            with exclusive(recipe.run_dir(root), "Run folder"):
                return _run(recipe, root, log, restart, strategy, None)
        # Non-chief workers train in step with the chief but write nothing
        # the user sees: their copies go to a scratch folder.
        with scratch_dir("worker") as scratch:
            return _run(recipe, root, log, restart, strategy, pathlib.Path(scratch))
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as error:
        if not is_multi_worker(strategy):
            raise
        resume = recipe.run_dir(root).parent / f".{recipe.name}.resume"
        raise WorkerLostError(lost_worker_message(error, resume)) from None


def _run(recipe, root, log, restart, strategy, scratch):
    run_dir = recipe.run_dir(root)
    output_root = run_dir.parent
    start = time.perf_counter()
    replicas = strategy.num_replicas_in_sync
    if replicas > 1:
        log(
            f"Training on {replicas} replicas ({type(strategy).__name__}): global "
            f"batch {recipe.baseline.batch_size * replicas}"
        )
    config = baseline_config(recipe, replicas)
    model, metrics, teacher_path = _start_model(
        recipe, root, config, log, strategy, scratch
    )
    log(f"Baseline test: {tasks.format_metrics(metrics['test'])}")
    result = {
        "recipe": recipe.model_dump(mode="json", by_alias=True),
        "baseline": {"test": metrics["test"], **model_size(model)},
        "stages": [],
    }
    resume = resume_folder(
        recipe,
        output_root,
        restart,
        log,
        replicas,
        writable=not scratch,
        inputs=_input_files(recipe, root, teacher_path),
    )
    task = tasks.get_task(recipe.task.name, recipe.task.max_examples)
    try:
        model = _run_stages(
            model,
            recipe,
            task,
            config,
            resume,
            scratch,
            teacher_path,
            result,
            log,
            strategy,
        )
    except BaseException:
        _drop_if_empty(resume)
        raise
    if scratch:
        log("Stages done; the chief worker writes the run folder")
        return result
    # Exports trace and convert the model: from plain variables.
    model = out_of_scope(model)
    report = publish(
        model, recipe, task, result, run_dir, resume, teacher_path, log, start
    )
    shutil.rmtree(resume, ignore_errors=True)
    print_summary(report)
    log(f"Run folder: {run_dir} (report.md, report.png)")
    return result


def _drop_if_empty(resume):
    # A run that failed before its first checkpoint (an epoch's, or a
    # finished stage's result) leaves nothing to resume: no folder either.
    if resume is None or not resume.is_dir():
        return
    done = [*resume.glob("*/checkpoint/state.json"), *resume.glob("*/result.json")]
    if not done:
        shutil.rmtree(resume, ignore_errors=True)


def _input_files(recipe, root, start):
    """Returns the files the stages read: the starting model and any teacher."""
    teachers = {
        modifier.teacher
        for stage in recipe.stages
        for modifier in stage.modifiers
        if getattr(modifier, "teacher", "baseline") != "baseline"
    }
    return [pathlib.Path(start), *sorted(pathlib.Path(t) for t in teachers)]


def _start_model(recipe, root, config, log, strategy, scratch):
    """Returns `(model, metrics, path)`: the model the stages start from.

    `path` is its `.keras` file, untouched by the stages (which change the
    model in place): what `teacher: baseline` and the benchmark read.
    """
    output_root = recipe.run_dir(root).parent
    if recipe.model.path:
        model, metrics = _load_given_model(recipe, root, log)
        return model, metrics, pathlib.Path(root) / recipe.model.path
    model, metrics = ensure_baseline(
        config,
        output_root,
        recipe.baseline.cache,
        log=log,
        strategy=strategy,
        write_root=scratch or output_root,
    )
    started = baseline_folder(config, scratch or output_root)  # a non-chief's own copy
    if not started.is_dir():
        started = baseline_folder(config, output_root)
    return model, metrics, started / "model.keras"


def _run_stages(
    model, recipe, task, config, resume, scratch, teacher_path, result, log, strategy
):
    """Runs every stage under `strategy`; returns the stripped model."""
    if not recipe.stages:
        return model
    progress = RunProgress(sum(s.epochs for s in recipe.stages), log)
    model = in_scope(model, strategy)
    with strategy.scope():
        if recipe.precision != "float32":
            model = _with_policy(model, recipe.precision)
            log(f"Training stages in {recipe.precision}")
        for index, stage in enumerate(recipe.stages):
            name = f"stage-{index}-{stage.name}"
            model, stage_result = run_stage(
                model,
                stage,
                task,
                config,
                (scratch / "resume" if scratch else resume) / name,
                log,
                teacher_path,
                progress,
                read_folder=resume / name if resume else None,
            )
            result["stages"].append(stage_result)
        model = _strip(model)
        if recipe.precision != "float32":
            model = _with_policy(model, "float32")
    return model


def _load_given_model(recipe, root, log):
    from tfaccel.models import load_model

    task = tasks.get_task(recipe.task.name, recipe.task.max_examples)
    model = load_model(pathlib.Path(root) / recipe.model.path)
    _check_vocabulary(model, task, recipe.model.path)
    log(f"Evaluating {recipe.model.path} on the {task.name} test split")
    return model, {"test": task.evaluate(model, "test")}


def _check_vocabulary(model, task, path):
    expected = task.model_overrides()
    for key in ("encoder_vocabulary_size", "decoder_vocabulary_size"):
        got = getattr(model, key, None)
        if got != expected[key]:
            raise UserError(
                f"The model at '{path}' does not fit the {task.name} task: its "
                f"{key} is {got}, the task needs {expected[key]}. Train it on this "
                f"task (tfaccel baseline --task {task.name}). Received: {key}={got}"
            )


def _with_policy(model, policy):
    from tfaccel.quantization.precision import with_policy

    return with_policy(model, policy)


def _strip(model):
    import tfaccel

    return tfaccel.strip(model)


def _check_supported(recipe):
    # The schema accepts every planned modifier and format; refuse clearly
    # what this build cannot run yet instead of silently skipping work.
    for stage in recipe.stages:
        for modifier in stage.modifiers:
            if type(modifier).applier is None:
                runnable = [
                    name
                    for name, cls in registered_modifiers().items()
                    if cls.applier is not None
                ]
                raise UserError(
                    f"This version of tfaccel cannot apply modifier "
                    f"'{modifier.type}' yet (stage '{stage.name}'). Available: "
                    f"{', '.join(runnable)}. Received: type={modifier.type!r}"
                )
    if "tensorrt" in recipe.export:
        # Before hours of training, not after.
        from tfaccel.export import tensorrt

        tensorrt.check_available()
