"""`tfaccel bench`: latency, memory, size and accuracy of every runtime of a run.

Each runtime (Keras, SavedModel, LiteRT, ONNX Runtime, TensorRT) runs in its
own fresh Python process, one after another, with the same pinned threads. It
times greedy generation of whole test sources (warm-up, then timed repeats,
`tfaccel.bench.timing`), smallest batch size first, reading the process's
peak RSS (`ru_maxrss`) after each size; then it scores the test split.
Which artifacts to time, and the task, come from `tfaccel.bench.targets`;
bench.json, bench.md and `compare` from `tfaccel.bench.bench_files`.

```python
report = run_bench(["savedmodels/g2p-prune50-qat-int8"], threads=1)
print(compare(["a/bench.json", "b/bench.json"]))  # same CPU, cores, threads only
```
"""

import dataclasses
import importlib
import pathlib
import resource
import sys
import tempfile
import time

from tfaccel._child import run_module, serve
from tfaccel.bench.bench_files import (  # noqa: F401 (re-exported)
    bench_rows,
    compare,
    render_markdown,
    table,
    write_bench,
)
from tfaccel.bench.targets import (  # noqa: F401 (re-exported)
    Target,
    artifact_bytes,
    find_targets,
    is_run_folder,
    resolve_task,
)
from tfaccel.errors import UserError

RSS_METHOD = (
    "ru_maxrss of a fresh process per runtime, read after timing each batch size "
    "(smallest first), minus that process's ru_maxrss after its imports and test "
    "data, before it loaded the model"
)


# === Running ===


def run_bench(
    paths,
    out=None,
    task=None,
    threads=1,
    batch_sizes=(1, 16),
    warmup=5,
    repeats=30,
    test_examples=None,
    log=print,
):
    """Times, measures and scores every runtime; writes bench.json and bench.md.

    Args:
        paths: run folders and/or artifact paths (see `find_targets`).
        out: the folder for bench.json and bench.md; defaults to the run
            folder, when `paths` is one run folder.
        task: "g2p" or "translation"; defaults to the run folder's.
        threads: int >= 1, for every runtime: TensorFlow intra-op, LiteRT
            `num_threads`, ONNX Runtime intra-op (inter-op is 1).
        batch_sizes: sequences per `generate` call, one row per size.
        warmup: untimed calls per runtime and batch size.
        repeats: timed calls per runtime and batch size.
        test_examples: score on the first N test examples; None for all.
        log: callable for progress lines.

    Returns:
        The bench.json dict.
    """
    _check_settings(threads, batch_sizes, warmup, repeats, test_examples)
    targets = find_targets(paths)
    task_name, max_examples = resolve_task(targets, task)
    out = _out_dir(paths, out)
    settings = {
        "task": task_name,
        "max_examples": max_examples,  # the run's data subset
        "threads": threads,
        "batch_sizes": sorted(batch_sizes),
        "warmup": warmup,
        "repeats": repeats,
        "test_examples": test_examples,
    }
    runtimes, rows = [], []
    for target in targets:
        log(f"Timing {target.name} ({target.path}) in a fresh process")
        result = _spawn({**settings, "target": dataclasses.asdict(target)})
        size, gzipped = artifact_bytes(target.path)
        runtimes.append({**result["runtime"], "bytes": size, "gzip_bytes": gzipped})
        rows += result["rows"]
    report = _report(settings, runtimes, rows)
    write_bench(report, out)
    log(f"Wrote {out / 'bench.json'} and bench.md")
    return report


def _check_settings(threads, batch_sizes, warmup, repeats, test_examples):
    checks = [("threads", threads, 1), ("warmup", warmup, 0), ("repeats", repeats, 1)]
    checks += [("batch-sizes", size, 1) for size in batch_sizes or [None]]
    checks += [("test-examples", test_examples, 1)] if test_examples else []
    for flag, value, least in checks:
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise UserError(
                f"--{flag} must be an int >= {least}. Received: {flag}={value!r}"
            )


def _out_dir(paths, out):
    if out is None and not (len(paths) == 1 and is_run_folder(pathlib.Path(paths[0]))):
        raise UserError(
            "Pass --out FOLDER for bench.json and bench.md: only a single run "
            f"folder is its own default. Received: {' '.join(map(str, paths))}"
        )
    out = pathlib.Path(paths[0] if out is None else out)
    try:  # before the long measurement, not after it
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as error:
        raise UserError(f"Cannot write to '{out}': {error.strerror}.") from error
    return out


def _spawn(spec):
    # Runs `_measure(spec)` in a fresh interpreter; returns its result dict.
    env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    done, result = run_module(__spec__.name, spec, env=env, capture_stderr=True)
    if done.returncode != 0 or result is None:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(
            f"Timing {spec['target']['name']} failed: its process exited with "
            f"code {done.returncode}. Its last error lines:\n{tail}"
        )
    if "error" in result:
        raise UserError(result["error"])
    return result


def _report(settings, runtimes, rows):
    from tfaccel.bench.machine import machine_info

    n = settings["threads"]
    return {
        "task": settings["task"],
        "settings": settings,
        "machine": machine_info(),
        "threads": {
            "threads": n,
            "tensorflow": {"intra_op": n, "inter_op": 1},
            "litert": {"num_threads": n},
            "onnxruntime": {"intra_op": n, "inter_op": 1},
        },
        "peak_rss_method": RSS_METHOD,
        "runtimes": runtimes,
        "rows": rows,
    }


# === The worker process ===


def _measure(spec):
    """Times, measures and scores one runtime; runs in its own process."""
    threads, target = spec["threads"], Target(**spec["target"])
    import tensorflow as tf

    # Before TensorFlow runs any op; every runtime's process imports it.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tfaccel import tasks

    task = tasks.get_task(spec["task"], spec["max_examples"])
    for module in runtime_modules(target.format):
        importlib.import_module(module)
    baseline = peak_rss_bytes()
    start = time.perf_counter()
    runner = load_target(target, threads)
    load_seconds = time.perf_counter() - start
    rows = [_time(runner, task, spec, size, baseline) for size in spec["batch_sizes"]]
    test = task.evaluate(runner, "test", max_examples=spec["test_examples"])
    print(f"  {target.name} test: {tasks.format_metrics(test)}", flush=True)
    runtime = {
        **dataclasses.asdict(target),
        "runtime": target_runtime(target, runner),
        "load_seconds": load_seconds,
        "imports_rss_bytes": baseline,
        "test": test,
    }
    return {"runtime": runtime, "rows": rows}


def runtime_modules(fmt):
    """Returns the modules a runtime's process imports before its baseline.

    Every process imports tfaccel.models (the generation loops use it), then
    what `tfaccel.export.formats` lists for the format.
    """
    from tfaccel.export import formats

    return ("tfaccel.models", *formats.get(fmt).modules)


def load_target(target, threads):
    """Returns the runner of a `Target`: a Keras model or an export's runtime.

    A file its runtime cannot read is a `UserError`.
    """
    from tfaccel.export import formats

    return formats.get(target.format).load(target.path, threads)


def _time(runner, task, spec, size, baseline):
    # One timing row of one batch size, with the peak RSS after it.
    from tfaccel.bench import timing
    from tfaccel.data import encode_sources

    (row,) = timing.benchmark(
        {spec["target"]["name"]: runner},
        task.sources("test"),
        batch_sizes=[size],
        warmup=spec["warmup"],
        repeats=spec["repeats"],
        encode=lambda b: encode_sources(b, task.source_vocab, task.max_source_length),
        max_length=task.max_generate_length,
        log=lambda line: print(f"  {line}", flush=True),
        width=task.max_source_length,  # as `tfaccel run` times: the full width
    )
    peak = peak_rss_bytes()
    for p in ("p50", "p90", "p99"):
        row[f"{p}_ms_per_sequence"] = row[f"{p}_ms"] / size
    return {**row, "peak_rss_bytes": peak, "rss_over_imports_bytes": peak - baseline}


def peak_rss_bytes():
    """Returns this process's peak resident set size so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux: KiB


def target_runtime(target, runner):
    """Returns the runtime's name and version, e.g. "LiteRT 2.0.2"."""
    from importlib.metadata import version

    from tfaccel.export import formats

    if hasattr(runner, "runtime"):  # ORTModel, TensorRTModel
        return runner.runtime
    runtime = formats.get(target.format).runtime
    if runtime == "litert":
        return f"LiteRT {version('ai-edge-litert')}"
    tensorflow = f"TensorFlow {version('tensorflow')}"
    if runtime == "keras":
        return f"Keras {version('keras')}, {tensorflow}"
    return tensorflow


if __name__ == "__main__":
    serve(_measure, sys.argv[1:3], UserError, str)
