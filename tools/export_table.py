"""Size and batch-1 generation latency of every export format, per preset.

Exports a model with `tfaccel.export` to each CPU format, then times greedy
generation of `--tokens` tokens at batch 1 (EOS ignored, so every run does
the same work) in each runtime with the same cached-decoding loop, all in
one process, one after the other. It also times *uncached* generation in
LiteRT and ONNX Runtime: the whole model (encoder and decoder over the
prefix so far) re-run for every token, which is what a runtime without
`decode_step` must do. Prints a Markdown table with the CPU named.

    python tools/export_table.py --presets small base --tokens 32

Without `--model`, a preset has seeded random weights: sizes and latency do
not depend on the weights, but greedy tokens of random weights are not
meaningful, so reduced-precision formats are verified by their logits
only. With `--model PRESET=PATH` (a trained `.keras`), every format is
verified as `tfaccel.export` always does.
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tfaccel.export import formats as export_formats

# Every format tfaccel.export makes that runs without a GPU.
FORMATS = export_formats.names(made_by="export", device="cpu")


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(function, repeats):
    """Median and minimum seconds of `repeats` calls, after one warm-up."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def build_model(preset, path):
    import keras

    from tfaccel.models import Seq2SeqTransformer, load_model

    if path:
        return load_model(path)
    keras.utils.set_random_seed(0)
    model = Seq2SeqTransformer.from_preset(preset)
    model.generate(np.full((1, 4), 5, np.int32), 2)  # builds it
    return model


def source_ids(model, length, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(3, model.encoder_vocabulary_size, (1, length)).astype(np.int32)


def uncached_litert(model, threads):
    """A `generate`-like callable re-running the whole model per token."""
    from ai_edge_litert.interpreter import Interpreter

    from tfaccel.export import tflite

    interpreter = Interpreter(
        model_content=tflite.convert_model(model, "fp32"), num_threads=threads
    )
    forward = interpreter.get_signature_runner()
    return _uncached(lambda e, d: next(iter(forward(**_inputs(e, d)).values())))


def uncached_ort(model, threads, folder):
    """The same, with the forward pass converted by tf2onnx to ONNX Runtime."""
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    from tfaccel.export import _onnx_ops, onnx

    spec = [
        tf.TensorSpec((None, None), tf.int32, "encoder_token_ids"),
        tf.TensorSpec((None, None), tf.int32, "decoder_token_ids"),
    ]
    function = tf.function(
        lambda e, d: {"logits": model(_inputs(e, d), training=False)},
        input_signature=spec,
    )
    with onnx._quiet_tf2onnx():
        proto, _ = tf2onnx.convert.from_function(
            function,
            input_signature=spec,
            opset=onnx.OPSET,
            custom_op_handlers=_onnx_ops.handlers(),
        )
    path = Path(folder) / "forward.onnx"
    path.write_bytes(proto.SerializeToString())
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, ["CPUExecutionProvider"])
    return _uncached(lambda e, d: session.run(None, _inputs(e, d))[0])


def _inputs(encoder_ids, decoder_ids):
    return {"encoder_token_ids": encoder_ids, "decoder_token_ids": decoder_ids}


def _uncached(forward):
    from tfaccel.export.generation import greedy

    def generate(ids, max_length, stop_at_eos=False):
        tokens = np.ones((len(ids), 1), np.int32)  # BOS
        for _ in range(max_length):
            logits = forward(ids, tokens)[:, -1, :]
            tokens = np.concatenate([tokens, greedy(logits)[:, None]], axis=1)
        return tokens[:, 1:]

    return generate


def verification_sources(model, task_name, width, source):
    """Real test sources of `task_name` when given, else seeded random ids."""
    if not task_name:
        return np.concatenate([source_ids(model, source, seed) for seed in range(8)])
    from tfaccel import tasks
    from tfaccel.data import encode_sources

    task = tasks.get_task(task_name)
    return encode_sources(task.sources("test")[:64], task.source_vocab, width)


def measure(preset, model_path, tokens, source, width, repeats, threads, log, task):
    import tfaccel.export
    from tfaccel.export import api

    model = build_model(preset, model_path)
    ids = source_ids(model, source)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfaccel-table-") as folder:
        task_name = task if model_path else None
        samples = verification_sources(model, task_name, width, source)
        result = tfaccel.export(
            model,
            folder,
            FORMATS,
            sample_inputs=samples,
            source_length=width,
            max_length=tokens,
            min_agreement=0.9 if model_path else 0.0,
            log=log,
        )
        keras_median, _ = timed(
            lambda: model.generate(ids, tokens, stop_at_eos=False), repeats
        )
        rows.append(("keras (TF, compiled)", None, keras_median))
        for artifact in result.artifacts:
            # LiteRT and ONNX Runtime take the threads (tfaccel.export.formats).
            runner = api.load(artifact.format, artifact.path, threads=threads)
            median, _ = timed(
                lambda r=runner: r.generate(ids, tokens, stop_at_eos=False), repeats
            )
            rows.append((artifact.format, artifact.bytes, median))
            log(f"  {artifact.format}: {median * 1e3:.1f} ms")
        cached = {name: seconds for name, _, seconds in rows}
        ratios = {}
        for name, make in (
            ("tflite_fp32", lambda: uncached_litert(model, threads)),
            ("onnx", lambda: uncached_ort(model, threads, folder)),
        ):
            generate = make()
            median, _ = timed(lambda g=generate: g(ids, tokens), repeats)
            ratios[name] = (median, cached[name])
            log(f"  {name} uncached: {median * 1e3:.1f} ms")
    return rows, ratios, model.count_params()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["small", "base"])
    parser.add_argument(
        "--model", action="append", default=[], help="PRESET=PATH of a trained .keras"
    )
    parser.add_argument(
        "--task", default=None, help="verify trained models on this task's test sources"
    )
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--source", type=int, default=12, help="source length")
    parser.add_argument("--width", type=int, default=32, help="exported source width")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    paths = dict(item.split("=", 1) for item in args.model)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    lines = [
        f"CPU: {cpu_name()}, {args.threads} thread(s); batch 1, source "
        f"{args.source} ids (exported width {args.width}), {args.tokens} generated "
        "tokens (EOS ignored); "
        f"median of {args.repeats} runs, all in one process.",
        "",
    ]
    for preset in args.presets:
        rows, ratios, params = measure(
            preset,
            paths.get(preset),
            args.tokens,
            args.source,
            args.width,
            args.repeats,
            args.threads,
            log,
            args.task,
        )
        weights = "trained" if paths.get(preset) else "random"
        lines += [
            f"**{preset}** ({params / 1e6:.2f}M parameters, {weights} weights)",
            "",
            "| format | size (MB) | latency (ms) | vs Keras |",
            "| --- | ---: | ---: | ---: |",
        ]
        keras_seconds = rows[0][2]
        for name, size, seconds in rows:
            size = "" if size is None else f"{size / 1e6:.2f}"
            lines.append(
                f"| {name} | {size} | {seconds * 1e3:.1f} | "
                f"{keras_seconds / seconds:.2f}x |"
            )
        lines.append("")
        for name, (uncached, cached) in ratios.items():
            lines.append(
                f"- {name}: cached `decode_step` {cached * 1e3:.1f} ms, uncached "
                f"(whole model per token) {uncached * 1e3:.1f} ms: "
                f"**{uncached / cached:.2f}x** faster cached"
            )
        lines.append("")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
