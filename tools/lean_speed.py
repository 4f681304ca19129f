"""Times the lean LiteRT graphs against the traced ones and CTranslate2.

One process, one rotation (`tfaccel.bench.timing.benchmark`), the same
weights for every runtime:

- `tflite_traced`: the traced Keras graph's int8 file (`tflite_int8` of a
  QAT model, `tflite_dynamic` of a float one; Python drives each step);
- `lean_int8`: the lean graph (`tfaccel.export.lean`), int8 weights,
  whole greedy loop in one `generate` call;
- `lean_int8_steps`: the same file, Python driving `decode_step`;
- `lean_fp32`: the lean graph in float32;
- `ct2_int8`, `ct2_float32`: CTranslate2 on the same weights
  (`tfaccel.export.ctranslate2`);
- `onnx_int8`: ONNX Runtime after `quantize_dynamic` of the traced graph;
- `lean_onnx`, `lean_onnx_int8`: the lean graph in ONNX Runtime, float32
  (whole loop in `generate.onnx`) and `quantize_dynamic` int8 (Python
  drives `decode_step.onnx`);
- `openvino_int8`: the lean float32 ONNX graphs in OpenVINO, int8 weights
  by NNCF (`tfaccel.bench.openvino`; skipped with `--skip openvino`, and
  with `--skip lean_onnx`, whose folder it reads).

With a trained baseline every runtime is scored on the test split (WER);
with `--random-weights` every sequence runs `--tokens` steps (no EOS stop).
It also reports the decode step alone: each runtime's seconds per step
against the memory-bound floor (the int8 kernels one step reads, over
this machine's measured copy bandwidth), and the lean step's op count.

    python tools/lean_speed.py \\
        --baseline ../shared/models/baseline-g2p-small/model.keras
    python tools/lean_speed.py --preset base --random-weights --tokens 32

CTranslate2 picks its int8 GEMM by CPU vendor; on AMD, run once more with
`CT2_USE_MKL=1` in the environment and keep the faster.
"""

import argparse
import collections
import functools
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from peers import baseline_task, pin_threads  # noqa: E402


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", help="a trained model.keras (task from metrics.json)"
    )
    parser.add_argument("--preset", default="base")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--task", default="g2p")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--eval-examples", type=int, default=None)
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument(
        "--shrunk",
        help="a second model.keras (e.g. a shrink recipe's) timed as lean_int8_shrunk",
    )
    parser.add_argument(
        "--shrink",
        action="store_true",
        help="with --random-weights: also time the model shrunk as "
        "recipes/g2p-base-shrink-int8.yaml shrinks it (6 heads, half the FFN, "
        "4 decoder layers), as lean_int8_shrunk",
    )
    parser.add_argument("--out", help="write the results as JSON here")
    return parser


def _load(args):
    import keras

    from tfaccel import tasks
    from tfaccel.models import Seq2SeqTransformer, load_model

    if args.random_weights:
        task = tasks.get_task(args.task)
        keras.utils.set_random_seed(0)
        model = Seq2SeqTransformer.from_preset(args.preset, **task.model_overrides())
        return task, model
    path = pathlib.Path(args.baseline)
    name, max_examples = baseline_task(path.parent)
    return tasks.get_task(name or args.task, max_examples), load_model(path)


def _vocabulary(task, side):
    from tfaccel.data.vocabulary import RESERVED_TOKENS

    vocab = task.source_vocab if side == "source" else task.target_vocab
    return list(RESERVED_TOKENS) + list(vocab.tokens)


def build(model, task, args, folder):
    from tfaccel.export import ctranslate2 as ct2
    from tfaccel.export import lean, tflite
    from tfaccel.export.architecture import describe
    from tfaccel.export.exporters import is_qat, weights_per_channel

    arch = describe(model)
    target = task.max_generate_length + 1
    runners, files = {}, {}
    qat = is_qat(model)
    if "tflite_traced" not in args.skip:
        # tfaccel's int8 file of the traced graph: full int8 for a QAT model
        # (its trained ranges), dynamic-range int8 weights otherwise.
        mode = "qat" if qat else "dynamic"
        data = tflite.convert(model, mode, task.max_source_length, target - 1)
        files["tflite_traced"] = data
        runners["tflite_traced"] = tflite.LiteRTModel(data, args.threads)
    if "onnx_int8" not in args.skip:
        # ORT quantize_dynamic of the traced graph: the fastest peer at batch 16.
        from tfaccel.export import api

        exported = api.export(
            model,
            folder / "exports",
            ["onnx_int8"],
            source_length=task.max_source_length,
            max_length=target - 1,
            min_agreement=0.0,  # measured, not refused
        )["onnx_int8"]
        runners["onnx_int8"] = api.load("onnx_int8", exported.path, args.threads)
    lean_module = lean.LeanModule(arch, target)
    for weights in ("int8", "fp32"):
        data = lean.convert_tflite(
            lean_module, weights, per_channel=weights_per_channel(model)
        )
        files[f"lean_{weights}"] = data
        runners[f"lean_{weights}"] = lean.LeanLiteRT(data, args.threads)
        if weights == "int8":
            runners["lean_int8_steps"] = lean.LeanLiteRT(data, args.threads, "python")
    if "lean_onnx" not in args.skip:
        from tfaccel.export import lean_onnx

        for weights, name in (("int8", "lean_onnx_int8"), ("fp32", "lean_onnx")):
            lean_onnx.convert(lean_module, folder / name, weights)
            runners[name] = lean_onnx.LeanORT(folder / name, args.threads)
        if "openvino" not in args.skip:
            from tfaccel.bench.openvino import OpenVINOLean

            runners["openvino_int8"] = OpenVINOLean(
                folder / "lean_onnx", args.threads, "int8"
            )
    shrunk = _shrunk(model, args)
    shrunk_arch = None if shrunk is None else describe(shrunk)
    if shrunk is not None:
        module = lean.LeanModule(shrunk_arch, target)
        data = lean.convert_tflite(
            module, "int8", per_channel=weights_per_channel(shrunk)
        )
        files["lean_int8_shrunk"] = data
        runners["lean_int8_shrunk"] = lean.LeanLiteRT(data, args.threads)
    if "ct2" not in args.skip:
        ct2_folder = folder / "ct2"
        source = None if args.random_weights else _vocabulary(task, "source")
        target_tokens = None if args.random_weights else _vocabulary(task, "target")
        ct2.convert(arch, ct2_folder, source, target_tokens)
        for compute in ("int8", "float32"):
            runners[f"ct2_{compute}"] = ct2.CT2Model(ct2_folder, args.threads, compute)
    return arch, runners, files, shrunk_arch


def _shrunk(model, args):
    from tfaccel.compression import shrink
    from tfaccel.models import load_model

    if args.shrunk:
        return load_model(args.shrunk)
    if args.shrink:
        # Timing only (random weights): magnitude importance, no data.
        return shrink(
            model,  # a new model; `model` is left as it is
            heads=6,
            ffn=0.5,
            layers={"decoder": 4},
        )
    return None


def _cut(tokens):
    # A sequence's tokens up to its EOS: what a word's output is.
    tokens = list(tokens)
    return tokens[: tokens.index(2) + 1] if 2 in tokens else tokens


def step_seconds(runner, ids, steps=32, repeats=20):
    """Median seconds of one decode step: `steps` steps, minus the encode."""

    def once(n):
        start = time.perf_counter()
        runner.generate(ids, n, stop_at_eos=False)
        return time.perf_counter() - start

    short, long = [], []
    for _ in range(repeats):
        short.append(once(2))
        long.append(once(steps))
    return (np.median(long) - np.median(short)) / (steps - 2)


def lean_ops(data):
    from tfaccel.export.tflite_inspect import op_report

    counts = collections.Counter(
        row["op"] for row in op_report(data) if row["subgraph"] == "decode_step"
    )
    return sum(counts.values()), dict(counts.most_common())


def main(argv=None):
    from tfaccel._io import scratch_dir
    from tfaccel.bench import timing
    from tfaccel.bench.roofline import measure_bandwidth
    from tfaccel.data import encode_sources

    args = _parser().parse_args(argv)
    pin_threads(args.threads)
    task, model = _load(args)
    with scratch_dir("lean-speed") as folder:
        arch, runners, files, shrunk_arch = build(
            model, task, args, pathlib.Path(folder)
        )
        sources = task.sources("test")
        max_length = args.tokens if args.random_weights else task.max_generate_length
        timed = {
            name: functools.partial(
                runner.generate, stop_at_eos=not args.random_weights
            )
            for name, runner in runners.items()
        }
        rows = timing.benchmark(
            timed,
            sources,
            batch_sizes=args.batch_sizes,
            warmup=args.warmup,
            repeats=args.repeats,
            encode=lambda b: encode_sources(
                b, task.source_vocab, task.max_source_length
            ),
            max_length=max_length,
            width=task.max_source_length,
        )
        ct2_best = {
            row["batch_size"]: min(
                r["p50_ms"]
                for r in rows
                if r["name"].startswith("ct2_int8")
                and r["batch_size"] == row["batch_size"]
            )
            for row in rows
            if "ct2_int8" in runners
        }
        for row in rows:
            best = ct2_best.get(row["batch_size"])
            row["vs_ct2_int8"] = None if best is None else best / row["p50_ms"]
        bandwidth = measure_bandwidth(threads=args.threads)["bandwidth_gbs"]
        floor = arch.kernel_bytes(1) / (bandwidth * 1e9)
        # A shrunk model reads fewer bytes per step: its own floor.
        floors = {name: floor for name in runners}
        if shrunk_arch is not None:
            floors["lean_int8_shrunk"] = shrunk_arch.kernel_bytes(1) / (bandwidth * 1e9)
        word = encode_sources(sources[:1], task.source_vocab, task.max_source_length)
        steps = {
            name: step_seconds(runners[name], word, min(32, task.max_generate_length))
            for name in runners
        }
        total_ops, ops = lean_ops(files["lean_int8"])
        scores, equal = {}, {}
        if not args.random_weights:
            words = task.sources("test")[: args.eval_examples]
            keras_out = [_cut(t) for t in task.generate(model, words)]
            for name, runner in runners.items():
                if name in ("lean_int8_steps", "lean_int8_shrunk"):
                    continue  # the same file as lean_int8; another model
                scores[name] = task.evaluate(runner, "test", args.eval_examples)
                out = [_cut(t) for t in task.generate(runner, words)]
                equal[name] = float(
                    np.mean([a == b for a, b in zip(out, keras_out, strict=True)])
                )
            scores["keras"] = task.evaluate(model, "test", args.eval_examples)
    report = {
        "model": str(args.baseline or f"{args.preset} (random weights)"),
        "threads": args.threads,
        "rows": rows,
        "bandwidth_gbs": bandwidth,
        "floor_ms": floor * 1e3,
        "int8_step_bytes": arch.kernel_bytes(1),
        "step_ms": {k: v * 1e3 for k, v in steps.items()},
        "floor_fraction": {k: floors[k] / v for k, v in steps.items()},
        "lean_decode_step_ops": total_ops,
        "lean_decode_step_op_kinds": ops,
        "scores": scores,
        "words_equal_to_keras": equal,
        "ct2_use_mkl": os.environ.get("CT2_USE_MKL"),
    }
    _print(report)
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(report, indent=2, default=float))


def _print(report):
    print(f"{report['model']}, {report['threads']} thread(s)")
    for row in report["rows"]:
        ratio = row["vs_ct2_int8"]
        print(
            f"  batch {row['batch_size']:>2} {row['name']:<16} "
            f"{row['p50_ms']:8.2f} ms p50  "
            + ("" if ratio is None else f"x{ratio:.2f} vs ct2_int8")
        )
    print(
        f"floor {report['floor_ms']:.3f} ms/step "
        f"({report['int8_step_bytes'] / 1e6:.1f} MB int8 at "
        f"{report['bandwidth_gbs']:.1f} GB/s)"
    )
    for name, ms in report["step_ms"].items():
        fraction = report["floor_fraction"][name]
        print(f"  step {name:<16} {ms:.3f} ms = {fraction:.0%} of floor")
    kinds = report["lean_decode_step_op_kinds"]
    print(f"lean decode_step ops: {report['lean_decode_step_ops']} {kinds}")
    for name, score in report["scores"].items():
        same = report["words_equal_to_keras"].get(name)
        same = "" if same is None else f"  words equal to Keras {same:.2%}"
        print(f"  WER {name:<16} {score['wer']:.4f}{same}")


if __name__ == "__main__":
    main()
