"""Publishing a finished run: the run folder, its exports, benchmark, report.

Everything goes into a temporary folder that is renamed onto
`<output_dir>/<recipe name>/` only when all of it succeeded
(`tfaccel._io.atomic_dir`), so a failed export or benchmark leaves the
previous run folder as it was.
"""

import gzip
import pathlib
import shutil
import time

from tfaccel import tasks
from tfaccel._io import atomic_dir, carry_over
from tfaccel.bench.layers import layer_rows
from tfaccel.bench.machine import machine_info
from tfaccel.bench.report import gpu_name, write_report
from tfaccel.export.api import copy_versions
from tfaccel.models import save_model
from tfaccel.recipe.sizes import model_size, recipe_sparsity


def publish(model, recipe, task, result, run_dir, resume, teacher_path, log, start):
    """Evaluates, exports and benchmarks `model`, then publishes the run folder.

    Args:
        model: the stripped final model, out of any strategy scope.
        recipe: the validated recipe.
        task: its `tfaccel.tasks` task.
        result: the run's metrics dict so far (baseline and stages); filled
            in and written as `metrics.json`.
        run_dir: the run folder to publish.
        resume: the resume folder, whose TensorBoard logs are kept.
        teacher_path: the `.keras` file the run started from, the
            benchmark's fp32 baseline.
        log: callable for progress lines.
        start: `time.perf_counter()` when the run began; the run's
            `seconds` count up to the report.

    Returns:
        The report data (`tfaccel.bench.report.write_report`).
    """
    with atomic_dir(run_dir, replace=True) as tmp:
        # Earlier SavedModel versions survive the rerun, never rewritten; a
        # new SavedModel export is the next version.
        copy_versions(run_dir, tmp)
        if (resume / "logs").is_dir():
            shutil.copytree(resume / "logs", tmp / "logs")
        if recipe.stages:
            final = task.evaluate(model, "test")
            result["final"] = {"test": final, **model_size(model)}
            log(f"Final (stripped) test: {tasks.format_metrics(final)}")
        result["final_sparsity"] = recipe_sparsity(model, recipe)
        save_model(model, tmp / "model.keras")
        if recipe.export:
            result["exports"] = export_artifacts(
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
        report = write_report(tmp)
        # What this run did not make stays: files of earlier runs (a
        # `tfaccel bench` result) and the user's own.
        carry_over(run_dir, tmp)
        return report


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


def export_artifacts(
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
    from tfaccel.core import registry
    from tfaccel.data import encode_sources
    from tfaccel.export import api, verify
    from tfaccel.export import formats as export_formats

    qat = registry.get("quantization")  # None until tfaccel.quantization loads
    qat = qat is not None and bool(qat.find_states(model))
    sources = task.sources("test")[:agreement_examples]
    reference = task.generate(model, sources)
    results = {}
    # The formats the registry marks as written here, not by tfaccel.export.
    recipe_made = export_formats.names(made_by="recipe")
    for name in recipe_made:
        if name in formats:
            write = _RECIPE_WRITERS[name]
            results[name] = write(model, task, folder, sources, reference, log)
    formats = [name for name in formats if name not in recipe_made]
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
        lock=False,  # the run holds its run folder's lock
        vocabularies=(task.source_vocab.all_tokens, task.target_vocab.all_tokens),
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


def _keras_file(model, task, folder, sources, reference, log):
    """`keras`: the stripped model.keras the run folder always holds, sized."""
    path = folder / "model.keras"
    data = path.read_bytes()
    return {
        "file": path.name,
        "bytes": len(data),
        "gzip_bytes": len(gzip.compress(data)),
    }


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


# The writer of each format `tfaccel.export.formats` lists as made_by="recipe";
# each takes (model, task, folder, sources, reference, log) and returns its
# metrics.json entry.
_RECIPE_WRITERS = {"keras": _keras_file, "keras_int8": _keras_int8}
