"""The baseline cache: which folder holds a recipe's baseline, and reusing it.

The baseline of a recipe lives in `<output_dir>/baseline-<task>-<preset>/`
and is reused by every recipe with the same baseline settings and data. A
folder of other settings or data (the shipped reference among them) is never
replaced: the new baseline goes beside it, with a digest in its name.
"""

import dataclasses
import functools
import hashlib
import json
import pathlib

from tfaccel import tasks
from tfaccel._io import read_json
from tfaccel.recipe import baseline as baseline_lib


def baseline_config(recipe, replicas=1):
    """Returns the `BaselineConfig` a recipe asks for.

    The recipe's batch size is per replica: with `replicas` replicas the
    global batch is that many times larger, and the learning rate follows
    the recipe's `distribute.learning_rate` rule.
    """
    from tfaccel.distribute import scaled_learning_rate

    return baseline_lib.BaselineConfig(
        task=recipe.task.name,
        preset=recipe.model.preset,
        epochs=recipe.baseline.epochs,
        batch_size=recipe.baseline.batch_size * replicas,
        learning_rate=scaled_learning_rate(
            recipe.baseline.learning_rate, replicas, recipe.distribute.learning_rate
        ),
        warmup_steps=recipe.baseline.warmup_steps,
        max_examples=recipe.task.max_examples,
        overrides=dict(recipe.model.overrides),
    )


def ensure_baseline(
    config, output_root, cache=True, log=print, strategy=None, write_root=None
):
    """Returns `(model, metrics)` of the baseline, training it if needed.

    A cached baseline is reused only when it was trained with the same
    config (task, preset, epochs, data size, ...) on the same data: the
    SHA-256 of the task's pairs (`_Task.fingerprint`), where it was saved.
    A cached baseline of other settings or data is never replaced: the new
    one goes beside it (`baseline_folder`). A baseline trained here is
    trained under `strategy` and written under `write_root` (default:
    `output_root`).
    """
    folder = baseline_folder(config, output_root)
    plain = pathlib.Path(output_root) / config.name
    if cache and _same_baseline(folder, config):
        log(f"Reusing cached baseline {folder}")
        return baseline_lib.load_baseline(folder)
    if folder != plain:
        what = "data" if _same_settings(_saved_metrics(plain), config) else "settings"
        log(
            f"Cached baseline {plain} has other {what}; it stays, and this one "
            f"goes to {folder.name}."
        )
    log(f"Training baseline {folder} ({config.epochs} epochs)")
    return baseline_lib.train_baseline(
        config, write_root or output_root, strategy=strategy, name=folder.name
    )


def baseline_folder(config, output_root):
    """Returns the folder that holds (or will hold) the baseline of `config`.

    `<output_root>/baseline-<task>-<preset>/` unless that folder holds a
    baseline of other settings or data (the shipped reference among them);
    then the name gains a digest of the settings and the data, so that no
    cache entry is ever replaced by another configuration.
    """
    plain = pathlib.Path(output_root) / config.name
    if not (plain / "metrics.json").is_file() or _same_baseline(plain, config):
        return plain
    key = {**_cache_key(dataclasses.asdict(config)), "data": _fingerprint(config)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return plain.with_name(f"{config.name}-{digest[:10]}")


def _saved_metrics(folder):
    path = folder / "metrics.json"
    return read_json(path) if path.is_file() else None


def _same_settings(saved, config):
    wanted = _cache_key(dataclasses.asdict(config))
    return saved is not None and _cache_key(saved.get("config", {})) == wanted


def _same_baseline(folder, config):
    saved = _saved_metrics(folder)
    if not _same_settings(saved, config):
        return False
    data = saved.get("task", {}).get("data_sha256")
    return data is None or data == _fingerprint(config)


@functools.cache
def _task_fingerprint(task, max_examples):
    return tasks.get_task(task, max_examples).fingerprint()


def _fingerprint(config):
    return _task_fingerprint(config.task, config.max_examples)


def _cache_key(config):
    # Everything that changes the trained weights; not how often it is scored.
    return {k: v for k, v in config.items() if k != "eval_examples"}
