"""Runs a validated recipe: baseline, stages, evaluation, run folder.

The run folder `<output_dir>/<recipe name>/` is published atomically when
the run ends; the baseline is cached in `<output_dir>/baseline-<task>-<preset>/`
and reused by every recipe with the same baseline settings.
"""

import dataclasses
import json
import pathlib
import time

from tfaccel import tasks
from tfaccel._io import atomic_dir
from tfaccel.errors import UserError
from tfaccel.recipe import baseline as baseline_lib


def baseline_config(recipe):
    """Returns the `BaselineConfig` a recipe asks for."""
    return baseline_lib.BaselineConfig(
        task=recipe.task.name,
        preset=recipe.model.preset,
        epochs=recipe.baseline.epochs,
        batch_size=recipe.baseline.batch_size,
        learning_rate=recipe.baseline.learning_rate,
        warmup_steps=recipe.baseline.warmup_steps,
        max_examples=recipe.task.max_examples,
        overrides=dict(recipe.model.overrides),
    )


def ensure_baseline(config, output_root, cache=True, log=print):
    """Returns `(model, metrics)` of the baseline, training it if needed.

    A cached baseline is reused only when it was trained with the same
    config (task, preset, epochs, data size, ...).
    """
    folder = pathlib.Path(output_root) / config.name
    wanted = _cache_key(dataclasses.asdict(config))
    if cache and (folder / "metrics.json").is_file():
        cached = json.loads((folder / "metrics.json").read_text())
        if _cache_key(cached.get("config", {})) == wanted:
            log(f"Reusing cached baseline {folder}")
            return baseline_lib.load_baseline(folder)
        log(f"Cached baseline {folder} has other settings; retraining it.")
    log(f"Training baseline {folder} ({config.epochs} epochs)")
    return baseline_lib.train_baseline(config, output_root)


def _cache_key(config):
    # Everything that changes the trained weights; not how often it is scored.
    return {k: v for k, v in config.items() if k != "eval_examples"}


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


def run_recipe(recipe, root=".", log=print):
    """Runs `recipe` and returns the run's metrics dict.

    Args:
        recipe: a validated `tfaccel.recipe.schema.Recipe`.
        root: folder the recipe's relative paths are taken from.
        log: callable for progress lines.
    """
    _check_supported(recipe)
    run_dir = recipe.run_dir(root)
    output_root = run_dir.parent
    start = time.perf_counter()
    if recipe.model.path:
        model, metrics = _load_given_model(recipe, root, log)
    else:
        config = baseline_config(recipe)
        model, metrics = ensure_baseline(config, output_root, recipe.baseline.cache)
    result = {
        "recipe": recipe.model_dump(mode="json", by_alias=True),
        "baseline": {"test": metrics["test"]},
        "stages": [],
        "seconds": time.perf_counter() - start,
    }
    with atomic_dir(run_dir, replace=True) as tmp:
        tasks.dump_json(result, tmp / "metrics.json")
        model.save(tmp / "model.keras")
    log(f"Baseline test: {tasks.format_metrics(metrics['test'])}")
    log(f"Run folder: {run_dir}")
    return result


def _check_supported(recipe):
    # The schema accepts every planned format; this build can only run the
    # baseline. Refuse clearly instead of silently skipping work.
    if recipe.stages:
        raise UserError(
            "This version of tfaccel cannot run recipe stages yet; remove "
            f"`stages:` to run the baseline only. Received: stages="
            f"{[stage.name for stage in recipe.stages]}"
        )
    if recipe.export:
        raise UserError(
            "This version of tfaccel cannot export yet; remove `export:` to run "
            f"the baseline only. Received: export={list(recipe.export)}"
        )
