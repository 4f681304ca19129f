"""Runs a validated recipe: baseline, stages, evaluation, run folder.

The run folder `<output_dir>/<recipe name>/` is published atomically when
the run ends; the baseline is cached in `<output_dir>/baseline-<task>-<preset>/`
(one of other settings beside it, with a digest in its name) and reused by
every recipe with the same baseline settings.
"""

import dataclasses
import functools
import gzip
import hashlib
import importlib
import json
import pathlib
import shutil
import tempfile
import time

from tfaccel import tasks
from tfaccel._io import atomic_dir, atomic_file
from tfaccel.bench.layers import layer_rows
from tfaccel.bench.machine import machine_info
from tfaccel.bench.report import gpu_name, print_summary, write_report
from tfaccel.distribute import (
    get_strategy,
    in_scope,
    is_chief,
    is_multi_worker,
    lost_worker_message,
    out_of_scope,
)
from tfaccel.errors import UserError, WorkerLostError
from tfaccel.export.api import copy_versions
from tfaccel.models import save_model
from tfaccel.recipe import baseline as baseline_lib
from tfaccel.recipe.progress import RunProgress
from tfaccel.recipe.registry import registered_modifiers


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
    return json.loads(path.read_text()) if path.is_file() else None


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
            return _run(recipe, root, log, restart, strategy, None)
        # Non-chief workers train in step with the chief but write nothing
        # the user sees: their copies go to a scratch folder.
        with tempfile.TemporaryDirectory(prefix="tfaccel-worker-") as scratch:
            return _run(recipe, root, log, restart, strategy, pathlib.Path(scratch))
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as error:
        if not is_multi_worker(strategy):
            raise
        resume = recipe.run_dir(root).parent / f".{recipe.name}.resume"
        raise WorkerLostError(lost_worker_message(error, resume)) from None


def _run(recipe, root, log, restart, strategy, scratch):
    run_dir = recipe.run_dir(root)
    output_root = run_dir.parent
    write_root = scratch or output_root
    start = time.perf_counter()
    replicas = strategy.num_replicas_in_sync
    if replicas > 1:
        log(
            f"Training on {replicas} replicas ({type(strategy).__name__}): global "
            f"batch {recipe.baseline.batch_size * replicas}"
        )
    config = baseline_config(recipe, replicas)
    if recipe.model.path:
        model, metrics = _load_given_model(recipe, root, log)
    else:
        model, metrics = ensure_baseline(
            config,
            output_root,
            recipe.baseline.cache,
            log=log,
            strategy=strategy,
            write_root=write_root,
        )
    log(f"Baseline test: {tasks.format_metrics(metrics['test'])}")
    result = {
        "recipe": recipe.model_dump(mode="json", by_alias=True),
        "baseline": {"test": metrics["test"], **_size(model)},
        "stages": [],
    }
    # `teacher: baseline` reads the model the recipe started from, untouched
    # by the stages (which change `model` in place).
    started = baseline_folder(config, write_root)  # a non-chief's own copy
    if not started.is_dir():
        started = baseline_folder(config, output_root)
    teacher_path = (
        pathlib.Path(root) / recipe.model.path
        if recipe.model.path
        else started / "model.keras"
    )
    resume = _resume_folder(
        recipe, output_root, restart, log, replicas, writable=not scratch
    )
    progress = RunProgress(sum(s.epochs for s in recipe.stages), log)
    task = tasks.get_task(recipe.task.name, recipe.task.max_examples)
    if recipe.stages:
        model = in_scope(model, strategy)
    with strategy.scope():
        if recipe.stages and recipe.precision != "float32":
            model = _with_policy(model, recipe.precision)
            log(f"Training stages in {recipe.precision}")
        for index, stage in enumerate(recipe.stages):
            name = f"stage-{index}-{stage.name}"
            model, stage_result = _run_stage(
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
        if recipe.stages:
            model = _strip(model)
            if recipe.precision != "float32":
                model = _with_policy(model, "float32")
    if scratch:
        log("Stages done; the chief worker writes the run folder")
        return result
    # Exports trace and convert the model: from plain variables.
    model = out_of_scope(model)
    with atomic_dir(run_dir, replace=True) as tmp:
        if "saved_model" in recipe.export:
            # Earlier SavedModel versions survive the rerun: never rewritten.
            copy_versions(run_dir, tmp)
        if (resume / "logs").is_dir():
            shutil.copytree(resume / "logs", tmp / "logs")
        if recipe.stages:
            final = task.evaluate(model, "test")
            result["final"] = {"test": final, **_size(model)}
            log(f"Final (stripped) test: {tasks.format_metrics(final)}")
        result["final_sparsity"] = _sparsity(model, recipe)
        save_model(model, tmp / "model.keras")
        if recipe.export:
            result["exports"] = _export(
                model, recipe.export, task, tmp, log, recipe.verify.min_agreement
            )
        result["layers"] = layer_rows(model)
        if recipe.benchmark is not None:
            result["benchmark"] = _benchmark(
                model, teacher_path, recipe, task, tmp, result.get("exports", {}), log
            )
        if recipe.assert_ is not None:
            result["asserts"] = check_asserts(recipe.assert_, result)
            result["passed"] = all(row["passed"] for row in result["asserts"])
        result["machine"] = {**machine_info(), "gpu": gpu_name()}
        result["seconds"] = time.perf_counter() - start
        tasks.dump_json(result, tmp / "metrics.json")
        report_data = write_report(tmp)
    shutil.rmtree(resume, ignore_errors=True)
    print_summary(report_data)
    log(f"Run folder: {run_dir} (report.md, report.png)")
    return result


def _benchmark(model, baseline_path, recipe, task, folder, exports, log):
    """Times generation of the baseline, the final model and every export.

    `tfaccel.bench.timing.benchmark` on real test sources encoded at the
    task's full source width, each runtime on the same batches; `ratio` is
    the fp32 baseline's (Keras, cached decoding) median over each row's.
    """
    from tfaccel.bench import timing
    from tfaccel.data import encode_sources
    from tfaccel.export.api import load
    from tfaccel.models import load_model

    runners = {"baseline": load_model(baseline_path), "keras": model}
    for name, export in exports.items():
        if "runtime" in export:  # not the .keras files
            runners[name] = load(name, folder / export["file"])
    config = recipe.benchmark
    rows = timing.benchmark(
        runners,
        task.sources("test"),
        batch_sizes=config.batch_sizes,
        warmup=config.warmup,
        repeats=config.repeats,
        encode=lambda batch: encode_sources(
            batch, task.source_vocab, task.max_source_length
        ),
        max_length=task.max_generate_length,
        log=log,
    )
    return {
        "config": config.model_dump(mode="json"),
        "rows": timing.speedups(rows, "baseline"),
    }


# assert key -> (metric, sign): the limit bounds sign * (run - baseline), in
# points (WER and PER are fractions in metrics, percentages in recipes).
_LIMITS = {
    "max_wer_increase": ("wer", 1, 100.0),
    "max_per_increase": ("per", 1, 100.0),
    "max_bleu_decrease": ("bleu", -1, 1.0),
}


def check_asserts(limits, result):
    """Returns one row per limit of a recipe's `assert` block.

    Accuracy limits hold for the final Keras model and for every exported
    artifact scored on the test split: the row's `value` is the worst of
    them, and `worst` names it. `min_sparsity` is measured on the final
    model (`final_sparsity`).

    Args:
        limits: a `tfaccel.recipe.schema.AssertConfig`.
        result: the run's metrics dict so far.

    Returns:
        A list of dicts with `name`, `limit`, `value`, `worst` and `passed`.
    """
    rows = []
    baseline = result["baseline"]["test"]
    scored = {"keras": result.get("final", result["baseline"])["test"]}
    for name, export in result.get("exports", {}).items():
        if "test" in export:
            scored[name] = export["test"]
    for key, (metric, sign, scale) in _LIMITS.items():
        limit = getattr(limits, key)
        if limit is None:
            continue
        changes = {
            name: sign * (test[metric] - baseline[metric]) * scale
            for name, test in scored.items()
        }
        worst = max(changes, key=changes.get)
        rows.append(
            {
                "name": key,
                "limit": limit,
                "value": changes[worst],
                "worst": worst,
                "passed": changes[worst] <= limit + 1e-9,
            }
        )
    if limits.min_sparsity is not None:
        value = result["final_sparsity"]
        rows.append(
            {
                "name": "min_sparsity",
                "limit": limits.min_sparsity,
                "value": value,
                "worst": "keras",
                "passed": value >= limits.min_sparsity - 1e-9,
            }
        )
    return rows


def _sparsity(model, recipe):
    """Fraction of exact zeros in the recipe's pruning targets.

    Without a pruning modifier, over every kernel (`re:.*kernel`).
    """
    from tfaccel.pruning.prune import match_variables

    targets = [
        target
        for stage in recipe.stages
        for modifier in stage.modifiers
        if modifier.type == "magnitude_pruning"
        for target in modifier.targets
    ] or ["re:.*kernel"]
    zeros = total = 0
    for variable in match_variables(model, targets):
        values = variable.numpy()
        zeros += int((values == 0).sum())
        total += values.size
    return zeros / max(total, 1)


def _resume_folder(recipe, output_root, restart, log, replicas=1, writable=True):
    """Returns the resume folder of `recipe`, emptied if it cannot be used.

    The folder is keyed by everything that shapes the stages' weights: a
    recipe whose task, model, baseline, precision or stages changed since
    the killed run, or a run on another number of replicas, starts afresh
    (export and assert settings may change).

    A non-chief worker (`writable=False`) changes nothing: it gets the
    folder to read the chief's checkpoints from, or None where the chief
    starts afresh.
    """
    folder = pathlib.Path(output_root) / f".{recipe.name}.resume"
    shaping = {"task", "model", "baseline", "precision", "stages"}
    key = recipe.model_dump(mode="json", by_alias=True, include=shaping)
    if replicas > 1:
        key["replicas"] = replicas
    key_file = folder / "recipe.json"
    if not writable:
        usable = not restart and key_file.is_file()
        return folder if usable and json.loads(key_file.read_text()) == key else None
    if folder.is_dir():
        if restart:
            log(f"--restart: removing the checkpoints in {folder}")
            shutil.rmtree(folder)
        elif not key_file.is_file() or json.loads(key_file.read_text()) != key:
            log(f"The recipe changed since {folder} was written; starting afresh")
            shutil.rmtree(folder)
        else:
            log(f"Resuming from the checkpoints in {folder} (--restart discards them)")
    folder.mkdir(parents=True, exist_ok=True)
    if not key_file.is_file():
        with atomic_file(key_file) as tmp:
            tmp.write_text(json.dumps(key, indent=1, sort_keys=True))
    return folder


def _applier(modifier):
    # Each modifier config names its applier (`Modifier.applier`), so a new
    # technique registers itself without changes here.
    module, function = type(modifier).applier.split(":")
    return getattr(importlib.import_module(module), function)


def _run_stage(
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

    `folder` keeps the stage's epoch checkpoint, its TensorBoard logs and,
    once it is finished, `result.json`. A finished stage is rebuilt (its
    modifiers applied again, without a teacher) and its weights restored,
    not trained again; a stage with a checkpoint continues after its last
    saved epoch. Those are read from `read_folder` (default: `folder`; a
    non-chief worker reads the chief's, None: start afresh).

    Runs under the strategy whose scope it is called in: the data are
    split over its replicas, and a worker lost mid-fit raises
    `WorkerLostError`.
    """
    import keras
    import tensorflow as tf

    import tfaccel
    from tfaccel.distillation import recipe as distillation
    from tfaccel.recipe import checkpoint

    progress = progress or RunProgress(stage.epochs, log)
    strategy = tf.distribute.get_strategy()
    read_folder = folder if read_folder is ... else read_folder
    done = folder / "result.json"
    finished = None
    if read_folder is not None and (read_folder / "result.json").is_file():
        finished = json.loads((read_folder / "result.json").read_text())
    train = task.dataset("train", config.batch_size, shuffle=True, seed=config.seed)
    train = baseline_lib.for_replicas(train, strategy.num_replicas_in_sync)
    distilled = [m for m in stage.modifiers if m.type == "distillation"]
    teacher = None
    if distilled and finished is None:
        teacher = distillation.load_teacher(distilled[0], teacher_path, log=log)
        # Before the other modifiers: their schedules count this data's steps.
        data = distillation.training_data(distilled[0], teacher, task, config, log)
        train = train if data is None else data
    if finished is not None:
        steps = finished["steps_per_epoch"]
    else:
        steps = stage.steps_per_epoch or baseline_lib.count_batches(train)
    trained = model
    # Shrinking and factorizing build new layers, so they come before
    # pruning, clustering and QAT, which wrap weights; distillation wraps the
    # finished student for training, so it comes last (`Modifier.order`).
    for modifier in sorted(stage.modifiers, key=lambda m: type(m).order):
        apply = _applier(modifier)
        if modifier.type == "distillation":
            if finished is None:
                trained = apply(model, modifier, teacher)
        elif modifier.type == "shrink":
            model = trained = apply(model, modifier, steps, task=task, log=log)
        else:
            model = trained = apply(model, modifier, steps)
    saved = folder / "checkpoint"
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
    logs = str(folder.parent / "logs" / stage.name)
    if initial_epoch < stage.epochs:
        trained.fit(
            train,
            epochs=stage.epochs,
            initial_epoch=initial_epoch,
            callbacks=[
                *tfaccel.callbacks(model, log_dir=logs),
                keras.callbacks.TensorBoard(log_dir=logs),
                checkpoint.EpochCheckpoint(
                    saved, model, None if trained is model else trained
                ),
                progress.callback(f"stage '{stage.name}'"),
            ],
            shuffle=False,
            verbose="auto",
            steps_per_epoch=steps if stage.steps_per_epoch else None,
        )
    test = task.evaluate(model, "test")
    log(f"Stage '{stage.name}' test: {tasks.format_metrics(test)}")
    seconds = time.perf_counter() - start
    result = {
        "name": stage.name,
        "test": test,
        "seconds": seconds,
        "steps_per_epoch": steps,
        "optimizer_steps": int(trained.optimizer.iterations.numpy()),
        **_size(model),
    }
    if initial_epoch:
        result["resumed_after_epoch"] = initial_epoch
    with atomic_file(done) as tmp:
        tmp.write_text(json.dumps({"steps_per_epoch": steps, "result": result}))
    return model, result


def _size(model):
    """Parameters and matmul MACs per token (`tfaccel.compression.flops`)."""
    from tfaccel.compression import flops

    return {
        "parameters": int(flops.parameter_count(model)),
        "kernel_macs_per_token": int(flops.kernel_macs(model)),
    }


def _export(
    model, formats, task, folder, log, min_agreement=0.9, agreement_examples=500
):
    """Exports with `tfaccel.export` into `folder` and scores each artifact.

    The folder is the run's temporary folder, published only when the whole
    run succeeds. Each artifact is verified by `tfaccel.export` on 64 test
    sources (at least `min_agreement` of its greedy tokens equal Keras's),
    then run in its own runtime (SavedModel, LiteRT, ONNX Runtime, TensorRT)
    on the whole test split, and compared token by token with the Keras model
    on `agreement_examples` test sources. `keras_int8` runs in Keras.

    `tflite_int8` of a model trained with QAT takes its trained ranges; of a
    float model it is post-training quantization calibrated on training
    sources.
    """
    from tfaccel.data import encode_sources
    from tfaccel.export import api, verify
    from tfaccel.quantization import _state as qat_state

    qat = bool(qat_state.find_states(model))
    sources = task.sources("test")[:agreement_examples]
    reference = task.generate(model, sources)
    results = {}
    formats = list(formats)
    if "keras" in formats:
        # The run folder always holds the stripped model as model.keras.
        path = folder / "model.keras"
        data = path.read_bytes()
        results["keras"] = {
            "file": path.name,
            "bytes": len(data),
            "gzip_bytes": len(gzip.compress(data)),
        }
        formats.remove("keras")
    if "keras_int8" in formats:
        results["keras_int8"] = _keras_int8(
            model, task, folder, sources, reference, log
        )
        formats.remove("keras_int8")
    if not formats:
        return results
    exported = api.export(
        model,
        folder,
        formats,
        sample_inputs=encode_sources(
            sources[:64], task.source_vocab, task.max_source_length
        ),
        representative=[task.representative_sources()],
        source_length=task.max_source_length,
        max_length=task.max_generate_length,
        min_agreement=min_agreement,
        log=log,
    )
    for artifact in exported.artifacts:
        runner = api.load(artifact.format, artifact.path)
        test = task.evaluate(runner, "test")
        agreement = verify.token_agreement(reference, task.generate(runner, sources))
        results[artifact.format] = {
            "file": str(pathlib.Path(artifact.path).relative_to(folder)),
            # tflite_int8 of a QAT model takes its trained ranges.
            "mode": "qat" if qat and artifact.format == "tflite_int8" else None,
            "bytes": artifact.bytes,
            "gzip_bytes": artifact.gzip_bytes,
            "runtime": artifact.runtime,
            "max_difference": artifact.max_difference,
            "test": test,
            "agreement_with_keras": agreement,
        }
        log(
            f"Export {artifact.format}: {artifact.bytes / 1e6:.2f} MB, "
            f"{artifact.runtime} test: {tasks.format_metrics(test)}, tokens equal "
            f"to Keras: {agreement['tokens']:.2%}"
        )
    return results


def _keras_int8(model, task, folder, sources, reference, log):
    """Keras's own `Model.quantize("int8")` on a copy, scored in Keras.

    Keras quantizes Dense, EinsumDense and Embedding weights to int8 (per
    output channel) and the activations dynamically at each call. It is the
    peer that needs no training; the `.keras` file is written for its size.
    """
    import warnings

    from tfaccel.export import verify

    # A fresh copy: the same weights (int8-grid ones after QAT), no QAT calls.
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # layers with no int8 form
        copy.quantize("int8")
    path = folder / "model_keras_int8.keras"
    copy.save(path)
    data = path.read_bytes()
    test = task.evaluate(copy, "test")
    agreement = verify.token_agreement(reference, task.generate(copy, sources))
    log(
        f"Export keras_int8: {len(data) / 1e6:.2f} MB, Keras test: "
        f"{tasks.format_metrics(test)}, tokens equal to float Keras: "
        f"{agreement['tokens']:.2%}"
    )
    return {
        "file": path.name,
        "mode": "keras_int8",
        "bytes": len(data),
        "gzip_bytes": len(gzip.compress(data)),
        "test": test,
        "agreement_with_keras": agreement,
    }


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
