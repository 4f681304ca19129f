"""Batch-1 greedy generation speed of several TFLite files, in one run.

Each file is loaded in LiteRT's interpreter (one thread) and decodes real
test sources one at a time with the key/value cache, as an app on a phone
would. Two workloads:

- `words`: the first `--sources` test sources of the task, each decoded
  until EOS (the lengths the model really produces);
- `fixed`: `--tokens` tokens from each of the same sources, EOS ignored, so
  every model does exactly the same number of decoder steps.

Rounds interleave the models (A, B, A, B, ...) so that load on a shared
machine hits them alike; the ratios against the first file are the
headline, the milliseconds context.

    python tools/litert_speed.py --task g2p \\
        savedmodels/g2p-export/model_fp32.tflite \\
        savedmodels/g2p-shrink-distill/model_fp32.tflite
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfaccel import tasks  # noqa: E402
from tfaccel.bench.machine import machine_info  # noqa: E402
from tfaccel.data import encode_sources  # noqa: E402
from tfaccel.export.tflite import LiteRTModel  # noqa: E402


def _pass(model, rows, max_length, stop_at_eos):
    """Seconds per source for one pass over `rows`, each decoded at batch 1."""
    times = []
    for row in rows:
        start = time.perf_counter()
        model.generate(row[None], max_length, stop_at_eos=stop_at_eos)
        times.append(time.perf_counter() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="TFLite files; the first is 1.0x")
    parser.add_argument("--task", default="g2p")
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    task = tasks.get_task(args.task)
    sources = task.sources("test")[: args.sources]
    ids = encode_sources(sources, task.source_vocab, task.max_source_length)
    models = [LiteRTModel(path) for path in args.files]
    rows = []
    for model in models:
        width = model.source_length
        rows.append([row[:width] for row in ids])
    workloads = {
        "words": (task.max_generate_length, True),
        "fixed": (args.tokens, False),
    }
    results = {name: [[] for _ in models] for name in workloads}
    for name, (max_length, stop) in workloads.items():
        for model, model_rows in zip(models, rows, strict=True):
            _pass(model, model_rows[:5], max_length, stop)  # warm-up
        for _ in range(args.rounds):
            for i, model in enumerate(models):
                results[name][i].extend(_pass(model, rows[i], max_length, stop))
    report = {"machine": machine_info(), "sources": len(sources), "workloads": {}}
    print(
        f"{report['machine']['cpu']}; LiteRT, 1 thread, batch 1, {len(sources)} "
        f"{args.task} test sources x {args.rounds} interleaved rounds"
    )
    print("| file | workload | p50 ms | p90 ms | mean ms | speed-up vs first |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in workloads:
        base = statistics.fmean(results[name][0])
        report["workloads"][name] = []
        for path, times in zip(args.files, results[name], strict=True):
            ordered = sorted(times)
            row = {
                "file": path,
                "p50_ms": 1e3 * statistics.median(times),
                "p90_ms": 1e3 * ordered[int(0.9 * (len(ordered) - 1))],
                "mean_ms": 1e3 * statistics.fmean(times),
                "speedup": base / statistics.fmean(times),
            }
            report["workloads"][name].append(row)
            print(
                f"| {path} | {name} | {row['p50_ms']:.2f} | {row['p90_ms']:.2f} | "
                f"{row['mean_ms']:.2f} | {row['speedup']:.2f}x |"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
